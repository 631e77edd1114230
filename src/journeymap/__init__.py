"""journeymap: a living, data-driven customer journey map for SaaS teams."""

from journeymap.workspace import Workspace

__version__ = "0.1.0"
__all__ = ["Workspace", "__version__"]
