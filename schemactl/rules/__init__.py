"""The rule engine: runs the safety rules over definitions and operation trees.

Severities and waivers come from schemactl.toml.
"""
