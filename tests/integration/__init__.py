"""
Integration tests: a real funcplane service on a real port, with real workerd children.
"""
