"""
Function traffic: the listener, one exchange per request, the pooled connections to the
children, and the WebSocket tunnel.  Nothing here imports L{funcplane.admin}.
"""
