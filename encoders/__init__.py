"""Task-oriented feature codecs for split points (CompressAI); never imports ``research``."""

from encoders.base import IdentityLink, LinkModule, build_link, list_links, register_link

__all__ = ["IdentityLink", "LinkModule", "build_link", "list_links", "register_link"]
