"""
Tests for L{funcplane.admin.cloudflare.unsupported} and
L{funcplane.admin.cloudflare.features}: each route wrangler calls for a feature funcplane
lacks answers Cloudflare's envelope naming that feature, with what to do instead.
"""

from funcplane.admin.cloudflare import features
from funcplane.admin.cloudflare.unsupported import REFUSED
from tests.admin.cloudflare.harness import BASE, SCRIPT, CloudflareCase

V4 = "http://127.0.0.1:8081/client/v4"
ACCOUNT_ID = BASE.rpartition("/")[2]


def refusal(feature, code=10015):
    """
    The whole answer a refusal of C{feature} is: status 403 and the envelope.
    """
    return 403, {
        "success": False,
        "errors": [{"code": code, "message": feature.message}],
        "messages": [],
        "result": None,
    }


class WranglerCallTests(CloudflareCase):
    """
    The calls wrangler 4.86 makes for these features, as it makes them.
    """

    def test_storage(self):
        """
        D1's export and time travel (not supported), R2 (Cloudflare's 10042) and Durable Objects (Cloudflare's
        10084): wrangler's d1 export, r2 commands and a deploy's Durable Object lookup; KV's
        feature names what is missing, its binding.
        """
        calls = [
            ("POST", BASE + "/d1/database/6f0a/export", {"output_format": "polling"}, refusal(features.D1)),
            ("GET", BASE + "/d1/database/6f0a/time_travel/bookmark", None, refusal(features.D1)),
            ("PUT", BASE + "/r2/buckets/photos", None, refusal(features.R2, 10042)),
            ("GET", BASE + "/r2/buckets/photos/objects/a.png", None, refusal(features.R2, 10042)),
            ("GET", BASE + "/workers/durable_objects/namespaces?per_page=1000", None,
             refusal(features.DURABLE_OBJECTS, 10084)),
        ]
        for method, url, data, expected in calls:
            self.assertEqual(self.call(method, url, data), expected, (method, url))
        self.assertEqual(
            features.KV.message,
            "Workers KV is not supported by funcplane on this API: it was built without a KV"
            " store.",
        )
        self.assertEqual(
            features.DURABLE_OBJECTS.message,
            "Durable Objects are not yet supported by funcplane: no class can be bound or"
            " migrated. Remove [[durable_objects.bindings]] and [[migrations]] from"
            " wrangler.toml to deploy the rest of the worker.",
        )

    def test_deploy_triggers(self):
        """
        What a deploy (or triggers deploy) asks beyond the upload when wrangler.toml has
        queues, workflows, routes or custom domains.
        """
        calls = [
            ("GET", BASE + "/queues?name=jobs", None, refusal(features.QUEUES)),
            ("POST", BASE + "/queues/5e1b/consumers", {"script_name": "hello"}, refusal(features.QUEUES)),
            ("PUT", BASE + "/workflows/checkout", {"script_name": "hello"}, refusal(features.WORKFLOWS)),
            ("GET", V4 + f"/zones?name=example.com&account.id={ACCOUNT_ID}", None, refusal(features.ROUTES)),
            ("GET", V4 + "/zones/9a7b/workers/routes", None, refusal(features.ROUTES)),
            ("PUT", SCRIPT + "/routes", [{"pattern": "example.com/*"}], refusal(features.ROUTES)),
            ("POST", SCRIPT + "/domains/changeset?replace_state=true", [], refusal(features.CUSTOM_DOMAINS)),
            ("PUT", SCRIPT + "/domains/records", {"origins": []}, refusal(features.CUSTOM_DOMAINS)),
            ("GET", BASE + "/workers/domains/records/1d2c", None, refusal(features.CUSTOM_DOMAINS)),
        ]
        for method, url, data, expected in calls:
            self.assertEqual(self.call(method, url, data), expected, (method, url))
        self.assertEqual(
            features.ROUTES.message,
            "Routes, Custom Domains and zones are not supported by funcplane: it routes by"
            " host, and a function answers at NAME.DOMAIN (DOMAIN is funcplane's --domain,"
            " func.local by default), each version at VERSION.NAME.DOMAIN. Remove route and"
            " routes from wrangler.toml.",
        )
        self.assertEqual(
            features.QUEUES.message,
            "Queues are not supported by funcplane: no queue can be created, sent to or"
            " consumed. Remove [[queues.producers]] and [[queues.consumers]] from wrangler.toml.",
        )

    def test_development_and_platforms(self):
        """
        Registering a workers.dev subdomain, wrangler dev --remote, service environments
        (wrangler init --from-dash), dispatch namespaces, previews and the other products.
        """
        calls = [
            ("PUT", BASE + "/workers/subdomain", {"subdomain": "mine"}, refusal(features.SUBDOMAIN)),
            ("GET", BASE + "/workers/subdomains/mine", None, refusal(features.SUBDOMAIN)),
            ("GET", BASE + "/workers/subdomain/edge-preview", None, refusal(features.REMOTE_DEVELOPMENT)),
            ("POST", SCRIPT + "/edge-preview", None, refusal(features.REMOTE_DEVELOPMENT)),
            ("GET", BASE + "/workers/services/hello/environments/production", None,
             refusal(features.SERVICE_ENVIRONMENTS)),
            ("GET", BASE + "/workers/services/hello/environments/production/content/v2", None,
             refusal(features.SERVICE_ENVIRONMENTS)),
            ("PUT", BASE + "/workers/dispatch/namespaces/tenants/scripts/hello", None,
             refusal(features.DISPATCH_NAMESPACES)),
            ("POST", BASE + "/workers/workers/hello/previews", {}, refusal(features.PREVIEWS)),
            ("GET", BASE + "/hyperdrive/configs", None, refusal(features.HYPERDRIVE)),
            ("GET", BASE + "/vectorize/v2/indexes", None, refusal(features.VECTORIZE)),
            ("GET", BASE + "/pages/projects", None, refusal(features.PAGES)),
            ("POST", V4 + "/pages/assets/upload", [], refusal(features.PAGES)),
            ("GET", BASE + "/ai/models/search", None, refusal(features.AI)),
            ("GET", BASE + "/secrets_store/stores", None, refusal(features.SECRETS_STORE)),
            ("GET", BASE + "/mtls_certificates", None, refusal(features.MTLS_CERTIFICATES)),
            ("GET", BASE + "/pipelines/v1/pipelines", None, refusal(features.PIPELINES)),
            ("GET", BASE + "/containers/applications", None, refusal(features.CONTAINERS)),
            ("GET", BASE + "/email/routing/addresses", None, refusal(features.EMAIL)),
            ("GET", V4 + "/zones/9a7b/email/routing", None, refusal(features.EMAIL)),
            ("GET", BASE + "/connectivity/directory/services", None, refusal(features.VPC)),
        ]
        for method, url, data, expected in calls:
            self.assertEqual(self.call(method, url, data), expected, (method, url))
        self.assertEqual(
            features.SUBDOMAIN.message,
            "Registering a workers.dev subdomain is not supported by funcplane: its one"
            " account's subdomain is always 'funcplane', and functions answer at NAME.DOMAIN"
            " (DOMAIN is funcplane's --domain, func.local by default), not on workers.dev.",
        )

    def test_every_refused_route(self):
        """
        Every method on every refused path, and on a path under each refused prefix,
        answers its feature's refusal.
        """
        for path, feature, methods, deeper in REFUSED:
            concrete = V4 + path.replace("<account>", ACCOUNT_ID).replace("<name>", "hello").replace("<zone>", "9a7b")
            for url in [concrete, concrete + "/a/b"] if deeper else [concrete]:
                for method in methods:
                    self.assertEqual(
                        self.call(method, url),
                        refusal(feature, feature.code or 10015),
                        (method, url),
                    )

    def test_what_still_answers(self):
        """
        Under the refused prefixes, what wrangler needs to succeed still does: the KV
        namespace list, empty here (wrangler delete cleans up Workers Sites with it), and
        the account's workers.dev subdomain (read on every deploy).
        """
        self.assertEqual(self.ok("GET", BASE + "/storage/kv/namespaces?per_page=100&order=title&direction=asc&page=1"), [])
        self.assertEqual(self.ok("GET", BASE + "/workers/subdomain"), {"subdomain": "funcplane"})

    def test_checked_first(self):
        """
        A refusal is given only with the admin token; a bad account id or script name is
        a 400 like anywhere else.
        """
        self.assertCfError(self.call("GET", V4 + "/zones?name=example.com", headers={}), 401, 10000)
        self.assertCfError(self.call("POST", BASE + "/queues", headers={}), 401, 10000)
        self.assertCfError(self.call("GET", V4 + "/accounts/a.b/queues"), 400, 10021, "account id 'a.b'")
        self.assertCfError(self.call("PUT", BASE + "/workers/scripts/Bad_Name/routes"), 400, 10021, "Bad_Name")


class FeatureTests(CloudflareCase):
    """
    The features themselves.
    """

    def test_messages_name_the_feature(self):
        """
        Each feature's message begins with what it is and says funcplane lacks it.
        """
        found = [value for value in vars(features).values() if isinstance(value, features.Feature)]
        self.assertGreater(len(found), 20)
        for feature in found:
            self.assertIn("not", feature.message, feature.name)
            self.assertIn("supported by funcplane", feature.message, feature.name)
            self.assertNotIn("does not implement", feature.message)

    def test_binding_refusal(self):
        """
        A binding of a type that needs a missing feature is refused naming the binding, its
        type, the feature and what funcplane provides; an unknown type, the same without a
        feature.
        """
        supported = ("plain_text", "json", "secret_text")
        self.assertEqual(
            features.binding_refusal("DB", "d1", supported),
            "binding DB has type 'd1': " + features.D1_BINDING.message
            + " The bindings funcplane provides: plain_text, json, secret_text (vars, secrets, KV).",
        )
        self.assertEqual(
            features.binding_refusal("X", "hologram", supported),
            "binding X has type 'hologram', which funcplane does not provide. The bindings"
            " funcplane provides: plain_text, json, secret_text (vars, secrets, KV).",
        )
