"""
Cron triggers: Cloudflare's cron syntax read with croniter (L{funcplane.schedule.cron}),
the scheduler that fires each schedule on the reactor's clock and never twice
(L{funcplane.schedule.scheduler}), and one run of a version's C{scheduled} handler and how
it is reported (L{funcplane.schedule.runs}).
"""
