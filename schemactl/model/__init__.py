"""The model: dynamic table definitions, the repository layout, its configuration and the actor."""
