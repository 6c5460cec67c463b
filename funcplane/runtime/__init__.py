"""
The workerd runtime: config generation, the child process, and the supervisor that starts,
stops and hands out versions' sockets.
"""
