"""The CI check of a schema pull request and its reporters."""
