"""
The part of Cloudflare's v4 API that wrangler speaks, under C{/client/v4}.
"""
