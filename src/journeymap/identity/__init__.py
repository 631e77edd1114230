"""Identity stitching: which identifiers are one person, and which account each event belongs to."""

from journeymap.identity.lookup import NotStitched, person_of
from journeymap.identity.stitch import StitchResult, stitch

__all__ = ["NotStitched", "StitchResult", "person_of", "stitch"]
