"""
Function traffic: the listener (a channel per client connection), an exchange per request,
HTTP/1.1 framing, backpressure, the pooled connections to the children, and the WebSocket
tunnel.  Nothing here imports L{funcplane.admin}.
"""
