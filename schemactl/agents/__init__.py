"""Agents as callers: the tool list and the MCP server."""
