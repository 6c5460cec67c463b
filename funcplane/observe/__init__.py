"""
What funcplane tells about the functions it runs: their log lines, and per-request trace
events for live tails.
"""
