"""
funcplane: a self-hosted Function-as-a-Service platform for Cloudflare-Workers-style
JavaScript, built on Twisted, running every function version in its own workerd process.
"""
