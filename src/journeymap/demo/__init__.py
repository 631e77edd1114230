"""`journeymap demo`: a simulated B2B SaaS business, its tool exports, a journey definition and the truth."""

from journeymap.demo.simulator import DemoOutput, simulate

__all__ = ["DemoOutput", "simulate"]
