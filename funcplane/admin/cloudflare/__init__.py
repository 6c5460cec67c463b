"""
The part of Cloudflare's v4 API that wrangler speaks, under C{/client/v4}: one Klein app
(C{app}: paths, envelope, checks) whose routes live with their resource (C{scripts},
C{versions}, C{deployments}, C{secrets}, C{tails}, C{aliases}, C{accounts}), composed
into L{funcplane.admin.cloudflare.api.CloudflareAPI}; the JSON shapes (C{shapes}) and
the multipart upload (C{upload}).  Its error table is in L{funcplane.admin.errors}.
"""
