"""
The admin side: the Site that admin connections are handed to, the seed's C{/api}, the
token check, and the Cloudflare v4 subset under L{funcplane.admin.cloudflare}.
"""
