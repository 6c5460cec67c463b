"""
A script's cron triggers (C{wrangler deploy} with C{[triggers] crons}, C{wrangler triggers
deploy}): C{PUT} replaces them, C{GET} lists them, both answering
C{{"schedules": [{"cron", "created_on", "modified_on"}]}} as Cloudflare does.  They belong
to the script (the function), not to a version, and take effect at once.
"""

from funcplane import errors
from funcplane.admin.cloudflare.app import SCRIPT, app, body, checked, ok
from funcplane.admin.parse import load_json
from funcplane.admin.schedules import cloudflare_schedule_json, cloudflare_schedules


class ScheduleRoutes:
    """
    C{.../workers/scripts/<name>/schedules}.
    """

    def _scheduler(self):
        if self._schedules is None:
            raise errors.NotSupported("this funcplane runs no cron triggers")
        return self._schedules

    @app.route(SCRIPT + "/schedules", methods=["PUT"])
    @checked
    async def put_schedules(self, request, name):
        scheduler = self._scheduler()
        crons = cloudflare_schedules(load_json(body(request)), self._clock.seconds())
        _, stored = await scheduler.put(name, crons)
        return ok(request, {"schedules": [cloudflare_schedule_json(s) for s in stored]})

    @app.route(SCRIPT + "/schedules", methods=["GET"])
    @checked
    async def schedules(self, request, name):
        _, stored = await self._scheduler().schedules(name)
        return ok(request, {"schedules": [cloudflare_schedule_json(s) for s in stored]})
