"""Verbs without a room of their own: propose and init.

Also the agent policy, which the api hands to the pipeline as a guard.
"""
