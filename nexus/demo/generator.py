"""Generates a deterministic product event stream with known shape, in Arrow chunks.

The story, per visitor: a first visit on a day spread uniformly over `weeks` weeks, often from a
campaign (UTM tags on the landing URL); a landing session of page views; some visitors sign up
(identify links their anonymous id to a user id), some of those add to cart, some of those purchase
(with revenue). Signed-up users come back on later days with a probability that decays with time and
grows with their plan and the features they use (`return_chance`), in
sessions separated by more than 30 minutes, using features and sometimes buying again. Browser, OS,
device, country and plan are fixed per visitor. The same seed and end time give the same rows.

Known properties tests rely on: each funnel step (page_view → signup → add_to_cart → purchase) reaches
fewer persons than the one before; the share of users active k days after signup falls as k grows;
gaps inside a session are under 30 minutes and gaps between sessions over 30 minutes.

A running A/B experiment (EXPERIMENT): users signing up in its last EXPERIMENT_DAYS days are assigned
by `experiment_assignment.assign` and exposed right after identifying; the treatment buys more (with
probability TREATMENT_EXTRA_PURCHASE one more purchase in the signup session) and uses features no
differently. Its draws come from a random stream of each user's own, so the rest of the data is the same
events as without it (plus those).
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import msgspec
import pyarrow as pa

from nexus.meta.experiment_assignment import assign
from nexus.meta.experiments import Variant

MINUTE_MS = 60_000
DAY_MS = 86_400_000
SESSION_GAP_MS = 30 * MINUTE_MS

PAGES = ["/", "/pricing", "/features", "/blog/launch", "/docs", "/about", "/changelog", "/integrations"]
FEATURES = ["dashboard_viewed", "report_created", "invite_sent", "export_downloaded", "search"]
PLANS = [("free", 0.6), ("pro", 0.3), ("team", 0.1)]
PRICES = {"free": 19.0, "pro": 49.0, "team": 199.0}
COUNTRIES = [("US", 30), ("GB", 10), ("DE", 10), ("FR", 7), ("IN", 12), ("BR", 8), ("CA", 6), ("JP", 5),
             ("ES", 5), ("NL", 4), ("AU", 3)]
# (browser, os, device_type, weight): one per visitor, named as ingest's user-agent parsing names them.
PLATFORMS = [("Chrome", "Windows", "desktop", 30), ("Chrome", "Mac OS X", "desktop", 12),
             ("Safari", "Mac OS X", "desktop", 8), ("Firefox", "Windows", "desktop", 5),
             ("Firefox", "Linux", "desktop", 3), ("Edge", "Windows", "desktop", 7),
             ("Safari", "iOS", "mobile", 17), ("Chrome", "Android", "mobile", 14),
             ("Safari", "iOS", "tablet", 4), ("Samsung Internet", "Android", "mobile", 3)]
# (utm_source, utm_medium, referrer domain, referrer class, weight); "" = direct.
CHANNELS = [("google", "cpc", "www.google.com", "search", 25), ("", "", "www.google.com", "search", 15),
            ("facebook", "social", "www.facebook.com", "social", 12), ("twitter", "social", "t.co", "social", 6),
            ("newsletter", "email", "", "email", 10), ("", "", "", "direct", 27), ("", "", "news.ycombinator.com", "other", 5)]
CAMPAIGNS = {"google": ["brand", "generic"], "facebook": ["spring_sale"], "twitter": ["launch"], "newsletter": ["weekly"]}
# Campaigns differ in true effectiveness, so that attribution has something to find (issue 17): the chance a
# landing visitor signs up (0.42 without a campaign), and the chance a returning session from the newsletter or a
# retargeting ad ends in a cart (0.12 for a session without a source). A returning session arrives through one
# of RETURN_ENTRIES with its probability, else without a source.
SIGNUP_CHANCE = {"brand": 0.6, "generic": 0.35, "spring_sale": 0.25, "launch": 0.42, "weekly": 0.5}
CART_CHANCE = {"weekly": 0.3, "retargeting": 0.2}
RETURN_ENTRIES = [(("newsletter", "email", "weekly", "", "email"), 0.15),
                  (("facebook", "paid_social", "retargeting", "www.facebook.com", "social"), 0.08)]


# Churn depends on behaviour, so that predictions have something to find (issue 18): a signed-up user's
# chance to come back on a day scales with their plan and with how many distinct features they have used,
# and a session without any feature use ends their returns for good with this probability.
PLAN_LOYALTY = {"free": 0.75, "pro": 1.15, "team": 1.5}
QUIT_AFTER_IDLE_SESSION = 0.5


def return_chance(days_since_signup: int, plan: str, features_used: int) -> float:
    """The chance a signed-up user comes back on a day: decaying with the days since signup, higher on
    paid plans and for users of more features (0.5× with none used, 1.5× with four or more)."""
    decay = 0.55 * math.exp(-days_since_signup / 6) + 0.04
    return decay * PLAN_LOYALTY[plan] * (0.5 + 0.25 * min(features_used, 4))


# The demo's experiment; nexus.demo.load saves its definition.
EXPERIMENT = "new-checkout"
EXPERIMENT_VARIANTS = [Variant("control"), Variant("treatment")]
EXPERIMENT_DAYS = 21
EXPOSURE = "$experiment_exposure"
TREATMENT_EXTRA_PURCHASE = 0.1


class DemoChunk(msgspec.Struct):
    """Rows for the events, persons and identities tables, as Arrow tables ready to insert."""

    events: pa.Table
    persons: pa.Table
    identities: pa.Table


EVENT_COLUMNS = ["ts", "event", "type", "message_id", "distinct_id", "anonymous_id", "user_id", "session_id",
                 "url", "host", "path", "referrer", "referrer_domain", "referrer_class", "utm_source",
                 "utm_medium", "utm_campaign", "country", "browser", "os", "device_type", "library",
                 "properties", "received_at"]


def generate(
    project_id: int, events: int, *, seed: int = 42, end: datetime | None = None, weeks: int = 8,
    chunk_events: int = 200_000,
) -> Iterator[DemoChunk]:
    """About `events` events (exactly that many), ending before `end` (default: today 00:00 UTC)."""
    end = end or datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    simulation = _Simulation(project_id, seed, int(end.timestamp() * 1000), weeks)
    remaining = events
    while remaining > 0:
        chunk = simulation.run(min(chunk_events, remaining))
        remaining -= chunk.events.num_rows
        yield chunk


class _Simulation:
    def __init__(self, project_id: int, seed: int, end_ms: int, weeks: int):
        self.project_id = project_id
        self.rng = random.Random(seed)
        self.end_ms = end_ms
        self.start_ms = end_ms - weeks * 7 * DAY_MS
        self.seed = seed
        self.visitor = 0
        self.message = 0

    def run(self, limit: int) -> DemoChunk:
        rows: list[tuple] = []
        persons: list[tuple] = []
        identities: list[tuple] = []
        while len(rows) < limit:
            self._visitor(rows, persons, identities)
        del rows[limit:]
        return DemoChunk(self._events_table(rows), self._persons_table(persons), self._identities_table(identities))

    def _visitor(self, rows: list[tuple], persons: list[tuple], identities: list[tuple]) -> None:
        rng = self.rng
        self.visitor += 1
        anonymous_id = f"anon-{self.seed}-{self.visitor}"
        user_id = f"user-{self.seed}-{self.visitor}"
        person_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        browser, os_name, device, _ = _pick(rng, PLATFORMS)
        country = _pick(rng, COUNTRIES)[0]
        source, medium, ref_domain, ref_class, _ = _pick(rng, CHANNELS)
        campaign = rng.choice(CAMPAIGNS[source]) if source else ""
        visitor = {"browser": browser, "os": os_name, "device_type": device, "country": country}
        identities.append((anonymous_id, person_id))

        # Landing session, at a uniformly random time of the span (hours weighted to the day).
        t = first_seen = self.start_ms + rng.randrange(0, self.end_ms - self.start_ms - DAY_MS)
        session = 0
        landing_query = f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}" if source else ""
        entry = {"referrer": f"https://{ref_domain}/" if ref_domain else "", "referrer_domain": ref_domain,
                 "referrer_class": ref_class, "utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
        distinct_id = anonymous_id
        sid = f"{anonymous_id}-s{session}"
        for i in range(rng.randint(1, 4)):
            page = "/" if i == 0 else rng.choice(PAGES)
            self._emit(rows, t, "page_view", "page", distinct_id, anonymous_id, "", sid, visitor, page,
                       landing_query if i == 0 else "", entry if i == 0 else {}, {})
            t += rng.randint(5_000, 4 * MINUTE_MS)
        if rng.random() >= SIGNUP_CHANCE.get(campaign, 0.42):
            persons.append((person_id, "{}", first_seen))
            return self._anonymous_returns(rows, t, anonymous_id, visitor)

        plan = _pick(rng, PLANS)[0]
        created = t
        self._emit(rows, t, "signup", "track", user_id, anonymous_id, user_id, sid, visitor, "/signup", "", {},
                   {"plan": plan, "method": rng.choice(["email", "google", "github"])})
        # The identify carries the traits (ingest stores an identify's traits as its properties), as the person does.
        traits = {"plan": plan, "email": f"{user_id}@example.com", "country": country}
        self._emit(rows, t + 1, "identify", "identify", user_id, anonymous_id, user_id, sid, visitor, "/signup", "",
                   {}, traits)
        identities.append((user_id, person_id))
        persons.append((person_id, json.dumps(traits), first_seen))
        distinct_id = user_id
        treated = self._experiment(rows, t + 2, user_id, anonymous_id, sid, visitor, plan)
        t += rng.randint(10_000, 3 * MINUTE_MS)
        if rng.random() < 0.5:
            self._buy(rows, t, distinct_id, anonymous_id, user_id, sid, visitor, plan, purchase_chance=0.6)
        if treated:
            self._extra_purchase(rows, t, user_id, anonymous_id, sid, visitor, plan)

        # Returns: on day k after signup with probability decaying in k, scaled by behaviour (return_chance).
        signup_day = (created - self.start_ms) // DAY_MS
        last_day = (self.end_ms - self.start_ms) // DAY_MS
        last_end = t + 10 * MINUTE_MS
        features_used: set[str] = set()
        for day in range(signup_day + 1, last_day):
            k = day - signup_day
            if rng.random() >= return_chance(k, plan, len(features_used)):
                continue
            t = max(self.start_ms + day * DAY_MS + rng.randint(6, 21) * 3_600_000 + rng.randrange(3_600_000),
                    last_end + SESSION_GAP_MS + MINUTE_MS)
            session += 1
            sid = f"{anonymous_id}-s{session}"
            session_features: set[str] = set()
            back_query, back_entry = self._return_entry()
            for i in range(rng.randint(1, 6)):
                self._emit(rows, t, "page_view", "page", user_id, anonymous_id, user_id, sid, visitor,
                           rng.choice(PAGES), back_query if i == 0 else "", back_entry if i == 0 else {}, {})
                t += rng.randint(5_000, 5 * MINUTE_MS)
                if rng.random() < 0.5:
                    feature = rng.choice(FEATURES)
                    session_features.add(feature)
                    self._emit(rows, t, feature, "track", user_id, anonymous_id, user_id, sid,
                               visitor, "/app", "", {}, {"plan": plan})
                    t += rng.randint(5_000, 3 * MINUTE_MS)
            if rng.random() < CART_CHANCE.get(back_entry.get("utm_campaign", ""), 0.12):
                t = self._buy(rows, t, user_id, anonymous_id, user_id, sid, visitor, plan, purchase_chance=0.7)
            last_end = t
            features_used |= session_features
            if not session_features and rng.random() < QUIT_AFTER_IDLE_SESSION:
                break  # a session without any feature use: this user may not come back at all

    def _return_entry(self) -> tuple[str, dict]:
        """The landing query and entry columns of a returning session: a source of RETURN_ENTRIES, or none."""
        draw = self.rng.random()
        for (source, medium, campaign, domain, referrer_class), chance in RETURN_ENTRIES:
            if draw < chance:
                return (f"?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}",
                        {"referrer": f"https://{domain}/" if domain else "", "referrer_domain": domain,
                         "referrer_class": referrer_class, "utm_source": source, "utm_medium": medium,
                         "utm_campaign": campaign})
            draw -= chance
        return "", {}

    def _experiment(self, rows: list[tuple], t: int, user_id: str, anonymous_id: str, sid: str, visitor: dict,
                    plan: str) -> bool:
        """Expose a user signing up during the experiment; whether they are in the treatment."""
        if t < self.end_ms - EXPERIMENT_DAYS * DAY_MS:
            return False
        variant = assign(EXPERIMENT, EXPERIMENT_VARIANTS, user_id)
        self._emit(rows, t, EXPOSURE, "track", user_id, anonymous_id, user_id, sid, visitor, "/signup", "", {},
                   {"experiment": EXPERIMENT, "variant": variant, "plan": plan})
        return variant == "treatment"

    def _extra_purchase(self, rows: list[tuple], t: int, user_id: str, anonymous_id: str, sid: str, visitor: dict,
                        plan: str) -> None:
        """The treatment's effect, drawn from the user's own stream (the shared one stays as it was)."""
        own = random.Random(f"{self.seed}:{user_id}")
        if own.random() < TREATMENT_EXTRA_PURCHASE:
            self._emit(rows, t + own.randint(MINUTE_MS, 8 * MINUTE_MS), "purchase", "track", user_id, anonymous_id,
                       user_id, sid, visitor, "/checkout", "", {},
                       {"plan": plan, "revenue": PRICES[plan], "currency": "USD", "quantity": 1})

    def _anonymous_returns(self, rows: list[tuple], t: int, anonymous_id: str, visitor: dict) -> None:
        """A visitor who did not sign up may come back once or twice, anonymously."""
        for session in range(1, 1 + (self.rng.random() < 0.3) + (self.rng.random() < 0.1)):
            t += SESSION_GAP_MS + self.rng.randint(MINUTE_MS, 5 * DAY_MS)
            if t >= self.end_ms:
                return
            sid = f"{anonymous_id}-s{session}"
            for _ in range(self.rng.randint(1, 3)):
                self._emit(rows, t, "page_view", "page", anonymous_id, anonymous_id, "", sid, visitor,
                           self.rng.choice(PAGES), "", {}, {})
                t += self.rng.randint(5_000, 4 * MINUTE_MS)

    def _buy(self, rows: list[tuple], t: int, distinct_id: str, anonymous_id: str, user_id: str, sid: str,
             visitor: dict, plan: str, purchase_chance: float) -> int:
        self._emit(rows, t, "add_to_cart", "track", distinct_id, anonymous_id, user_id, sid, visitor, "/pricing",
                   "", {}, {"plan": plan})
        t += self.rng.randint(20_000, 8 * MINUTE_MS)
        if self.rng.random() < purchase_chance:
            quantity = self.rng.choice([1, 1, 1, 2, 3])
            self._emit(rows, t, "purchase", "track", distinct_id, anonymous_id, user_id, sid, visitor, "/checkout",
                       "", {}, {"plan": plan, "revenue": PRICES[plan] * quantity, "currency": "USD",
                                "quantity": quantity})
            t += self.rng.randint(5_000, MINUTE_MS)
        return t

    def _emit(self, rows: list[tuple], t: int, event: str, call: str, distinct_id: str, anonymous_id: str,
              user_id: str, session_id: str, visitor: dict, path: str, query: str, entry: dict,
              properties: dict) -> None:
        if t >= self.end_ms:
            return
        self.message += 1
        rows.append((t, event, call, f"demo-{self.seed}-{self.message}", distinct_id, anonymous_id, user_id,
                     session_id, f"https://demo.nexus.dev{path}{query}", path, entry, visitor,
                     json.dumps(properties) if properties else "{}"))

    def _events_table(self, rows: list[tuple]) -> pa.Table:
        n = len(rows)
        columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS}
        for t, event, call, message_id, distinct_id, anonymous_id, user_id, sid, url, path, entry, visitor, props in rows:
            columns["ts"].append(t)
            columns["event"].append(event)
            columns["type"].append(call)
            columns["message_id"].append(message_id)
            columns["distinct_id"].append(distinct_id)
            columns["anonymous_id"].append(anonymous_id)
            columns["user_id"].append(user_id)
            columns["session_id"].append(sid)
            columns["url"].append(url)
            columns["path"].append(path)
            for key in ("referrer", "referrer_domain", "utm_source", "utm_medium", "utm_campaign"):
                columns[key].append(entry.get(key, ""))
            columns["referrer_class"].append(entry.get("referrer_class", "direct" if not entry else ""))
            for key in ("country", "browser", "os", "device_type"):
                columns[key].append(visitor[key])
            columns["properties"].append(props)
        columns["host"] = ["demo.nexus.dev"] * n
        columns["library"] = ["nexus-demo"] * n
        columns["received_at"] = columns["ts"]
        arrays = {name: pa.array(values, _ARROW_TYPES.get(name, pa.string())) for name, values in columns.items()}
        arrays["project_id"] = pa.array([self.project_id] * n, pa.uint32())
        return pa.table(arrays)

    def _persons_table(self, persons: list[tuple]) -> pa.Table:
        return pa.table({
            "project_id": pa.array([self.project_id] * len(persons), pa.uint32()),
            "person_id": pa.array([str(p[0]) for p in persons]),
            "properties": pa.array([p[1] for p in persons]),
            "created_at": pa.array([p[2] for p in persons], _TS),
            "version": pa.array([1] * len(persons), pa.uint64()),
        })

    def _identities_table(self, identities: list[tuple]) -> pa.Table:
        return pa.table({
            "project_id": pa.array([self.project_id] * len(identities), pa.uint32()),
            "distinct_id": pa.array([i[0] for i in identities]),
            "person_id": pa.array([str(i[1]) for i in identities]),
            "version": pa.array([1] * len(identities), pa.uint64()),
        })


_TS = pa.timestamp("ms", tz="UTC")
_ARROW_TYPES = {"ts": _TS, "received_at": _TS}


def _pick(rng: random.Random, weighted: list[tuple]) -> tuple:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]
