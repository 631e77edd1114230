"""Website and marketing events (canonical, source `marketing`): anonymous visitors, marketing touches
by channel, the pricing experiment, docs, forms that identify a lead, and nurture email clicks.

Most visitors never leave an email. Those who do keep their browser's anonymous id, and an `identify`
row links it to their email; the product signup later links it to a user id as well.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from journeymap.demo import business as b
from journeymap.demo.accounts import Accounts, People, arrival_times
from journeymap.demo.draws import group_cumsum, hex_ids, repeat_index, rows_choice
from journeymap.demo.funnel import FORM_DEMO, FORM_EBOOK, FORM_SIGNUP, FORM_WEBINAR, NA, Funnel
from journeymap.demo.writers import EventBatch, EventLog, codes_to_strings, json_objects

CH = {c: i for i, c in enumerate(b.CHANNELS)}
TOUCH_EVENT = ("ad_clicked", "page_viewed", "ad_clicked", "email_clicked", "page_viewed", "page_viewed")
TOUCH_PROPS = (
    '{"campaign":"brand_and_category_search","network":"google_ads","path":"/"}',
    '{"referrer":"google","path":"/blog/kpi-dashboards-that-get-used"}',
    '{"campaign":"dashboards_in_minutes","network":"linkedin","path":"/product"}',
    '{"campaign":"nurture_sequence","path":"/customers"}',
    '{"referrer":"partner","path":"/"}',
    '{"campaign":"conference_booth","path":"/events"}',
)
BROWSE = ("page_viewed", "pricing_page_viewed", "docs_viewed")
BROWSE_WEIGHTS = np.array([0.6, 0.25, 0.15])
PAGE_PROPS = ('{"path":"/product"}', '{"path":"/customers"}', '{"path":"/integrations"}', '{"path":"/blog"}')
DOC_PROPS = ('{"path":"/docs/getting-started"}', '{"path":"/docs/connect-snowflake"}', '{"path":"/docs/sql-editor"}',
             '{"path":"/docs/alerts"}', '{"path":"/docs/api"}')
PRICING_PROPS = tuple(f'{{"path":"/pricing","variant":"{v}"}}' for v in b.PRICING_VARIANTS)
FORM_PROPS = {FORM_EBOOK: '{"asset":"dashboard_design_playbook"}', FORM_WEBINAR: '{"webinar":"metrics_that_matter"}',
              FORM_DEMO: '{"form":"contact_sales"}'}
FORM_EVENT = {FORM_EBOOK: "ebook_downloaded", FORM_WEBINAR: "webinar_registered", FORM_DEMO: "demo_requested"}


def _web(ts, event, channel, anon, props, **kw) -> EventBatch:
    return EventBatch(ts=ts, event=event, source="marketing", channel=channel, anonymous_id=anon, properties=props,
                      type=kw.pop("type", "track"), **kw)


def anonymous_visitors(rng: np.random.Generator, n_accounts: int, log: EventLog) -> int:
    """Visitors who never become known; returns how many there were."""
    n = int(round(n_accounts * b.ANON_VISITORS_PER_ACCOUNT))
    t0 = arrival_times(rng, n)
    channel = rng.choice(len(b.CHANNELS), size=n, p=b.ANON_CHANNEL_MIX)
    anon = pa.array(hex_ids(rng, n, "a-"))
    calculator = rng.random(n) < b.P_SEAT_CALCULATOR
    k = 1 + rng.poisson(1.3, n)
    v, step = repeat_index(k)
    gap = np.where(rng.random(len(v)) < 0.85, rng.exponential(120.0, len(v)), rng.exponential(4 * b.DAY, len(v)))
    gap = np.where(step == 0, 0.0, gap)
    ts = t0[v] + group_cumsum(v, gap).astype(np.int64)
    kind = rng.choice(len(BROWSE), size=len(v), p=BROWSE_WEIGHTS)
    first = step == 0
    event_vocab = list(BROWSE) + list(TOUCH_EVENT)
    event = np.where(first, len(BROWSE) + channel[v], kind)
    props = _browse_props(rng, kind, calculator[v])
    props = pc.if_else(pa.array(first), codes_to_strings(channel[v], TOUCH_PROPS), props)
    visitor_anon = anon.take(pa.array(v))
    bad = rng.random(len(v)) < 0.02  # tracking without a cookie: placeholder ids that name nobody
    placeholder = codes_to_strings(rng.integers(0, 3, len(v)), ("guest", "undefined", ""))
    visitor_anon = pc.if_else(pa.array(bad), placeholder, visitor_anon)
    types = codes_to_strings(np.where(np.isin(event, _page_codes(event_vocab)), 0, 1), ("page", "track"))
    log.add(_web(ts, codes_to_strings(event, event_vocab), codes_to_strings(channel[v], b.CHANNELS), visitor_anon,
                 props, type=types))
    return n


def account_web_events(rng: np.random.Generator, acc: Accounts, ppl: People, f: Funnel, log: EventLog) -> None:
    """The champion's path from first touch through evaluation to a form (and nurture emails after)."""
    n, champ = acc.n, ppl.first_person
    anon = ppl.anon.take(pa.array(champ))
    anon2 = ppl.anon2.take(pa.array(champ))
    stop = np.where(f.acquired, f.acquired_at, b.END + 1)

    # marketing touches between first touch and evaluation (email only once we have their address)
    k = 1 + rng.poisson(b.TOUCHES_BEFORE_EVAL[acc.persona])
    a, step = repeat_index(k)
    first = step == 0
    ts = np.where(first, acc.first_touch[a],
                  acc.first_touch[a] + (rng.random(len(a)) * (f.eval_at - acc.first_touch)[a]).astype(np.int64))
    channel = np.where(first, acc.channel[a], rows_choice(rng, b.CHANNEL_MIX[acc.persona[a]]))
    known = ts > f.lead_at[a]
    channel = np.where((channel == CH["email"]) & ~known, CH["organic"], channel)
    webinar = (channel == CH["events"]) & known
    event = np.where(webinar, len(TOUCH_EVENT), channel)
    on_phone = (rng.random(len(a)) < 0.5) & np.asarray(anon2.is_valid().take(pa.array(a)))
    touch_anon = pc.if_else(pa.array(on_phone), anon2.take(pa.array(a)), anon.take(pa.array(a)))
    is_email = channel == CH["email"]
    keep = ts < stop[a]
    vocab = list(TOUCH_EVENT) + ["webinar_attended"]
    props = pc.if_else(pa.array(webinar), pa.repeat(pa.scalar('{"webinar":"metrics_that_matter"}'), len(a)),
                       codes_to_strings(channel, TOUCH_PROPS))
    _add(log, keep, ts, codes_to_strings(event, vocab), codes_to_strings(channel, b.CHANNELS),
         pc.if_else(pa.array(is_email), pa.nulls(len(a), pa.string()), touch_anon), props,
         email=pc.if_else(pa.array(is_email), ppl.emails.take(pa.array(champ[a])), pa.nulls(len(a), pa.string())),
         type=codes_to_strings(np.isin(event, [1, 4, 5]).astype(int), ("track", "page")))

    # evaluation: the pricing page (one arm of the experiment per browser) and docs
    a = np.flatnonzero(f.viewed_pricing)
    ts = f.eval_at[a]
    _add(log, ts < stop[a], ts, "pricing_page_viewed", codes_to_strings(acc.channel[a], b.CHANNELS), anon.take(pa.array(a)),
         codes_to_strings(f.calculator[a].astype(int), PRICING_PROPS), type="page")
    k = rng.poisson(b.DOCS_VIEWS[acc.persona])
    a = np.repeat(np.arange(n), k)
    ts = f.eval_at[a] + (rng.uniform(0.0, 3.0, len(a)) * b.DAY).astype(np.int64) + 300
    _add(log, ts < stop[a], ts, "docs_viewed", codes_to_strings(acc.channel[a], b.CHANNELS), anon.take(pa.array(a)),
         codes_to_strings(rng.integers(0, len(DOC_PROPS), len(a)), DOC_PROPS), type="page")

    # the form that makes them a lead: identify links the browser to an email
    for form, name in FORM_EVENT.items():
        a = np.flatnonzero(f.form == form)
        ts = f.lead_at[a]
        ok = ts <= b.END
        _add(log, ok, ts, name, codes_to_strings(acc.channel[a], b.CHANNELS), anon.take(pa.array(a)), FORM_PROPS[form])
        person = champ[a]
        traits = json_objects(["email", "name", "company"], [ppl.emails.take(pa.array(person)),
                                                             pa.array(ppl.full_names).take(pa.array(person)),
                                                             pa.array(acc.names).take(pa.array(a))])
        _add(log, ok, ts + 1, "identify", None, anon.take(pa.array(a)), None, type="identify",
             email=ppl.emails.take(pa.array(person)), traits=traits)
    a = np.flatnonzero(f.form == FORM_WEBINAR)
    ts = f.lead_at[a] + (rng.uniform(2.0, 10.0, len(a)) * b.DAY).astype(np.int64)
    _add(log, ts < stop[a], ts, "webinar_attended", "events", anon.take(pa.array(a)), FORM_PROPS[FORM_WEBINAR])

    # nurture emails to leads who have not bought (clicks come from the email tool: email, no browser id)
    k = np.where(f.form != FORM_SIGNUP, rng.poisson(1.5, n), 0)
    a = np.repeat(np.arange(n), k)
    ts = f.lead_at[a] + (rng.uniform(1.0, 40.0, len(a)) * b.DAY).astype(np.int64)
    lost = np.where(f.lost_at != NA, f.lost_at, b.END + 1)
    _add(log, (ts < stop[a]) & (ts < lost[a]), ts, "email_clicked", "email", None,
         codes_to_strings(rng.integers(0, 3, len(a)), ('{"campaign":"nurture_case_study"}', '{"campaign":"nurture_webinar"}',
                                                       '{"campaign":"nurture_trial_offer"}')),
         email=ppl.emails.take(pa.array(champ[a])))


def _add(log: EventLog, keep: np.ndarray, ts, event, channel, anon, props, **kw) -> None:
    idx = pa.array(np.flatnonzero(keep))

    def cut(x):
        return x.take(idx) if isinstance(x, pa.Array) else x

    log.add(_web(np.asarray(ts)[keep], cut(event), cut(channel), cut(anon), cut(props),
                 **{key: cut(value) for key, value in kw.items()}))


def _browse_props(rng: np.random.Generator, kind: np.ndarray, calculator: np.ndarray) -> pa.Array:
    vocab = list(PAGE_PROPS) + list(PRICING_PROPS) + list(DOC_PROPS)
    code = np.select(
        [kind == 0, kind == 1],
        [rng.integers(0, len(PAGE_PROPS), len(kind)), len(PAGE_PROPS) + calculator.astype(int)],
        len(PAGE_PROPS) + 2 + rng.integers(0, len(DOC_PROPS), len(kind)),
    )
    return codes_to_strings(code, vocab)


def _page_codes(vocab: list[str]) -> list[int]:
    return [i for i, e in enumerate(vocab) if e.endswith("_viewed")]

