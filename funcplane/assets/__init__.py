"""
Static assets: the content-addressed store of their files, the upload sessions wrangler
drives (manifest, buckets, completion token), and what a file is (its hash, its type).
"""
