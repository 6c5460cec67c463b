"""
The admin side: the Site that admin connections are handed to (with its deadlines) and its
guard (the token checked before a body is read, failed tries limited per address), the
seed's C{/api}, the token check, the Cloudflare v4 subset under
L{funcplane.admin.cloudflare}, and what both APIs answer for each domain error
(L{funcplane.admin.errors}).
"""
