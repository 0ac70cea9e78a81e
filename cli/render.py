"""Domain values (and, for jobs, proto messages) to stable JSON dicts, and the same data
as rich tables.

Every JSON key is snake_case and documented in docs/cli.md; enum values drop
their proto prefix (JOB_STATE_PENDING -> "PENDING", ROLE_ADMIN -> "admin"),
times are ISO-8601 UTC strings or null. Tables are built to fit 80 columns.
"""

from __future__ import annotations

import enum
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from minga.cli.parsing import format_duration
from minga.common.limits import format_duration as limit_duration

if TYPE_CHECKING:
    from minga.common.accounts import Institution, TokenInfo, User
    from minga.common.audit import AuditEntry
    from minga.common.domain import DependencyStatus, Job, JobCarbon, JobPreemption, Principal, StartEstimate
    from minga.common.leadership import LeadershipStatus
    from minga.common.quotas import InstitutionQuota, QuotaRow, QuotaView, TreeNode
    from minga.common.shares import PartialSettings, ProjectShare
    from minga.common.site_view import SiteView

JsonDict = dict[str, Any]


class Output(enum.StrEnum):
    """How a command shows its result."""

    table = "table"
    json = "json"


# -- scalars -------------------------------------------------------------------
def iso_time(ts: float) -> str | None:
    """Unix seconds -> "2025-01-31T12:00:00.250Z"; 0 (never) -> None."""
    if not ts:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- messages -> dicts ------------------------------------------------------------
def job_to_dict(job: Job) -> JsonDict:
    spec, res, env = job.spec, job.spec.resources, job.spec.runtime_env
    return {
        "id": job.id,
        "name": spec.name,
        "state": str(job.state),
        "owner": job.owner,
        "institution": job.institution,
        "project": spec.project or None,
        "site": job.site or None,
        "country": job.country or None,
        "gpu_model": job.gpu_model or None,
        "gpus": res.gpus,
        "attempts": job.attempts,
        "failures": job.failures,
        "infra_requeues": job.infra_requeues,
        "max_attempts": spec.max_attempts,
        "reason": job.reason,
        "run_id": job.run_id or None,
        "submitted_at": iso_time(job.submitted_at),
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
        "last_preemption": _preemption_to_dict(job.last_preemption) if job.last_preemption else None,
        "estimated_start": _estimate_to_dict(job.estimate) if job.estimate else None,
        "dependencies": [_dependency_to_dict(d) for d in job.dependencies],
        "carbon": _carbon_to_dict(job.carbon) if job.carbon else None,
        "spec": {
            "entrypoint": spec.entrypoint,
            "gpu_models": list(res.gpu_models),
            "min_gpu_memory_mb": res.min_gpu_memory_mb,
            "cpus": res.cpus,
            "memory_mb": res.memory_mb,
            "countries": list(spec.countries),
            "data_country": spec.data_country or None,
            "site_labels": dict(sorted(spec.site_labels)),
            "preemptible": spec.preemptible,
            "walltime_seconds": spec.walltime_seconds,
            "priority": spec.priority,
            "working_dir_digest": env.working_dir_digest or None,
            "pip": list(env.pip),
            "env": dict(sorted(env.env)),
            # Keys only, whatever the broker sent: a secret value is never printed.
            "secret_env": {k: "***" for k, _ in sorted(spec.secret_env)},
            "notify_url": spec.notify_url or None,
            "after": list(spec.after),
            "low_carbon": bool(spec.low_carbon),
            "low_carbon_first": spec.low_carbon_first,
        },
    }


def _carbon_to_dict(c: JobCarbon) -> JsonDict:
    return {
        "site_intensity": c.site_intensity or None,
        "min_intensity": c.min_intensity,
        "max_intensity": c.max_intensity,
        "sites": c.sites,
    }


def carbon_line(job: JsonDict) -> str | None:
    """`grid` in `job status`: the site's gCO2e/kWh and the range where it could run."""
    c = job.get("carbon")
    if not c:
        return None
    spec = job["spec"]
    pref = " first" if spec.get("low_carbon_first") else "" if spec.get("low_carbon") else None
    asked = "" if pref is None else f"; low-carbon{pref} asked"
    here = f"{c['site_intensity']:g} gCO2e/kWh here" if c.get("site_intensity") else "no site yet"
    if not c["sites"]:
        return f"{here}{asked}"
    return (
        f"{here}; {c['min_intensity']:g}-{c['max_intensity']:g} gCO2e/kWh among the {c['sites']} "
        f"site(s) that could take it{asked}"
    )


def _dependency_to_dict(d: DependencyStatus) -> JsonDict:
    return {"job_id": d.job_id, "condition": d.condition, "state": d.state, "status": d.status}


def _estimate_to_dict(e: StartEstimate) -> JsonDict:
    return {"at": iso_time(e.at), "later_than": iso_time(e.later_than), "assumptions": e.assumptions}


def _preemption_to_dict(p: JobPreemption) -> JsonDict:
    return {"at": iso_time(p.at), "kind": p.kind or None, "beneficiary": p.beneficiary or None, "reason": p.reason}


def institution_to_dict(inst: Institution) -> JsonDict:
    return {"slug": inst.slug, "name": inst.name, "country": inst.country, "weight": inst.weight}


def user_to_dict(user: User) -> JsonDict:
    return {
        "name": user.name,
        "institution": user.institution,
        "role": user.role.value,
        "created_at": iso_time(user.created_at),
    }


def site_to_dict(view: SiteView) -> JsonDict:
    site, in_use = view.site, dict(view.gpus_in_use)
    pools = [
        {
            "model": p.model,
            "memory_mb": p.memory_mb,
            "total": p.total,
            "in_use": in_use.get(p.model, 0),
            "free": p.free,
            "largest_node": p.largest_node,
        }
        for p in site.inventory.gpus
    ]
    return {
        "name": site.name,
        "institution": site.institution,
        "country": site.country,
        "state": site.state.value,
        "state_reason": site.state_reason,
        "connected": site.connected,
        "last_seen": iso_time(site.last_seen),
        "gpus": pools,
        "cpus": site.inventory.cpus,
        "memory_mb": site.inventory.memory_mb,
        "nodes": site.inventory.nodes,
        "labels": dict(sorted(site.labels)),
    }


def quota_to_dict(row: QuotaRow) -> JsonDict:
    return {
        "institution": row.institution,
        "country": row.country,
        "gpu_model": row.gpu_model,
        "owned": row.owned,
        "in_use": row.in_use,
        "held": row.held,
        "pending": row.pending,
        "weight": round(row.weight, 4),
        "entitlement_pct": round(row.entitlement_pct, 2),
        "usage_pct": round(row.usage_pct, 2),
        "fairshare": round(row.fairshare, 4),
        "guarantee": row.guarantee,
        "borrowed": row.borrowed,
        "lent": row.lent,
    }


def tree_node_to_dict(node: TreeNode) -> JsonDict:
    return {
        "level": node.level,
        "id": node.id,
        "parent": node.parent or None,
        "weight": round(node.weight, 4),
        "entitlement_pct": round(node.entitlement_pct, 2),
        "usage_pct": round(node.usage_pct, 2),
        "fairshare": round(node.fairshare, 4),
        "held": node.held,
        "demand": node.demand,
        "fair_share_gpus": round(node.fair_share_gpus, 2),
    }


def institution_quota_to_dict(i: InstitutionQuota) -> JsonDict:
    """One institution now: `fair_share_gpus` is what it is owed at this moment, next to
    what it holds; `fairshare` is Slurm's factor (1 idle, 0.5 on par)."""
    return {
        "institution": i.institution,
        "country": i.country,
        "weight": round(i.weight, 4),
        "entitlement_pct": round(i.entitlement_pct, 2),
        "usage_pct": round(i.usage_pct, 2),
        "fairshare": round(i.fairshare, 4),
        "guarantee": i.guarantee,
        "held": i.held,
        "demand": i.demand,
        "fair_share_gpus": round(i.fair_share_gpus, 2),
    }


def quota_view_to_dict(view: QuotaView) -> JsonDict:
    """`minga quota show`: per-model rows, per-institution shares now, the GPUs they split,
    the entitlement floor in effect and (with --tree) the account tree."""
    return {
        "rows": [quota_to_dict(r) for r in view.rows],
        "institutions": [institution_quota_to_dict(i) for i in view.institutions],
        "capacity": view.capacity,
        "share_policy": view.floor.share_policy,
        "base_grant": round(view.floor.base_grant, 4),
        "base_grant_fraction": view.floor.base_grant_fraction,
        "tree": [tree_node_to_dict(n) for n in view.tree],
    }


def whoami_to_dict(me: Principal) -> JsonDict:
    return {"name": me.name, "role": me.role.value, "institution": me.institution or None}


# -- printing -------------------------------------------------------------------
def print_json(data: Any) -> None:
    """Indented, key-sorted JSON on stdout: stable for scripts and diffs."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Col:
    """A table column. Cells never wrap, so no word is split across lines.

    `cap`: at most this wide, longer values end in an ellipsis (names, slugs);
    `flex`: takes the width left over, one line, ellipsis (reasons, details);
    `wrap`: wraps between words (a setting's value in words).
    """

    header: str
    cap: int | None = None
    flex: bool = False
    wrap: bool = False
    right: bool = False


TABLE_WIDTH = 80


def _column(col: Col | str) -> Col:
    return Col(col) if isinstance(col, str) else col


def _table(
    title: str | None, columns: Sequence[Col | str], rows: Sequence[Sequence[str]], width: int | None = None
) -> None:
    """A borderless table that fits the terminal, and 80 columns by design: every column
    is one line (`cap`/`flex` ones end in an ellipsis), so rich never folds a word."""
    from rich.console import Console
    from rich.table import Table

    cols = [_column(c) for c in columns]
    flex = any(c.flex for c in cols)
    table = Table(title=title, box=None, header_style="bold", pad_edge=False, expand=flex)
    for c in cols:
        table.add_column(
            c.header,
            no_wrap=not c.wrap,
            overflow="ellipsis",
            max_width=c.cap,
            ratio=1 if c.flex else None,
            min_width=8 if c.flex else None,
            justify="right" if c.right else "left",
        )
    for row in rows:
        table.add_row(*row)
    Console(soft_wrap=False, width=width, highlight=False).print(table)


def _write_wrapped(lines: Sequence[str]) -> None:
    """Notes under a table, wrapped between words to 80 columns."""
    sys.stdout.write(
        "".join(
            textwrap.fill(line, TABLE_WIDTH, break_long_words=False, break_on_hyphens=False) + "\n" for line in lines
        )
    )


def short_time(iso: str | None, seconds: bool = False) -> str:
    """An ISO time as a table shows it: "2025-01-31 12:00" (UTC); the full one is in JSON."""
    if not iso:
        return "-"
    return iso[: 19 if seconds else 16].replace("T", " ")


def show(output: Output, data: Any, table: Callable[[], None]) -> None:
    """Print `data` as JSON, or call `table` to render it for people."""
    if output == Output.json:
        print_json(data)
    else:
        table()


def _dash(value: Any) -> str:
    return "-" if value in (None, "", []) else str(value)


def _gpus(job: JsonDict) -> str:
    if not job["gpus"]:
        return "0"
    model = job["gpu_model"] or "|".join(job["spec"]["gpu_models"]) or "any"
    return f"{job['gpus']}x{model}"


def jobs_table(jobs: Sequence[JsonDict], now: float, more: Sequence[Sequence[str]] = ()) -> None:
    """One row a job; `more`: rows made elsewhere in the same columns (job arrays)."""
    rows = [list(r) for r in more]
    for j in jobs:
        submitted = datetime.fromisoformat(j["submitted_at"]).timestamp() if j["submitted_at"] else now
        rows.append([j["id"], _dash(j["name"]), j["state"], _gpus(j), format_duration(now - submitted), _where_why(j)])
    if not rows:
        sys.stdout.write("no jobs\n")
        return
    _table(
        None, ["ID", Col("NAME", cap=12), "STATE", Col("GPUS", cap=10), "AGE", Col("SITE / REASON", flex=True)], rows
    )


def _where_why(job: JsonDict) -> str:
    """The site a job runs on and/or why it waits, on one line (`job status` spells it out)."""
    return ": ".join(x for x in (job["site"], job["reason"]) if x) or "-"


def preemption_line(p: JsonDict | None, now: float | None = None) -> str | None:
    """ "12m ago, for uchile (reclaim): <the policy's reason>"; None if never preempted."""
    if p is None:
        return None
    when = f"at {p['at']}"
    if now is not None and p["at"]:
        when = f"{format_duration(now - datetime.fromisoformat(p['at']).timestamp())} ago"
    why = ", ".join(x for x in (f"for {p['beneficiary']}" if p["beneficiary"] else "", p["kind"] or "") if x)
    return f"{when}{f' ({why})' if why else ''}: {p['reason']}"


def estimate_lines(job: JsonDict, now: float | None = None) -> list[tuple[str, str]]:
    """A pending job's estimated start, worded as an estimate, and what it assumes; none
    for a job that is not pending."""
    if job["state"] != "PENDING":
        return []
    e = job.get("estimated_start")
    if e is None:
        return [("estimate", "none yet: the broker has not estimated since this job was queued; ask again shortly")]
    if e["at"]:
        when = e["at"]
        if now is not None:
            ahead = datetime.fromisoformat(e["at"]).timestamp() - now
            when += f" (in about {format_duration(ahead)})" if ahead >= 1 else ""
        line = f"{when}, an estimate, not a promise"
    elif e["later_than"]:
        line = f"later than {e['later_than']} (the estimate looks no further ahead)"
    else:
        line = "no start foreseen: it waits for something the estimate assumes will not change"
    return [("estimate", line), ("assuming", e["assumptions"])]


def job_detail(job: JsonDict, now: float | None = None) -> None:
    """`minga job status`: one field per line, the reason spelled out in full; the last
    preemption and a pending job's estimated start (with its assumptions) wrapped to 80
    columns, since the policy's reasons are long."""
    attempts = f"{job['attempts']} ({job['failures']} failed; the job fails at {job['max_attempts']})"
    infra = f"{job.get('infra_requeues', 0)} by the infrastructure (lost sites, Ray refusals; never failures)"
    fields = [
        ("id", job["id"]),
        ("name", job["name"]),
        ("state", job["state"]),
        ("owner", f"{job['owner']} ({job['institution']})"),
        ("gpus", _gpus(job)),
        ("site", job["site"]),
        ("country", job["country"]),
        ("attempts", attempts),
        ("requeued", infra),
        ("run", job["run_id"]),
        ("submitted", job["submitted_at"]),
        ("started", job["started_at"]),
        ("finished", job["finished_at"]),
        ("entrypoint", job["spec"]["entrypoint"]),
        ("reason", job["reason"]),
    ]
    fields += [("after", f"{d['job_id']}:{d['condition']}: {d['state']} ({d['status']})") for d in job["dependencies"]]
    preempted = preemption_line(job.get("last_preemption"), now)
    wrapped = ([("preempted", preempted)] if preempted else []) + estimate_lines(job, now)
    grid = carbon_line(job)
    wrapped += [("grid", grid)] if grid else []
    width = max(len(k) for k, _ in fields + [("preempted", "")])
    for key, value in fields:
        sys.stdout.write(f"{key:<{width}}  {_dash(value)}\n")
    for key, text in wrapped:
        sys.stdout.write(
            textwrap.fill(text, 80, initial_indent=f"{key:<{width}}  ", subsequent_indent=" " * (width + 2)) + "\n"
        )


def institutions_table(items: Sequence[JsonDict]) -> None:
    _table(
        None,
        [Col("SLUG", cap=20), Col("NAME", flex=True), "CC", "WEIGHT"],
        [[i["slug"], i["name"], i["country"], f"{i['weight']:g}"] for i in items],
    )


def users_table(items: Sequence[JsonDict]) -> None:
    _table(
        None,
        [Col("NAME", cap=20), Col("INSTITUTION", cap=20), "ROLE", "CREATED (UTC)"],
        [[u["name"], u["institution"], u["role"], short_time(u["created_at"])] for u in items],
    )


def token_to_dict(t: TokenInfo) -> JsonDict:
    """A credential as listed: never its secret or hash, only a short handle."""
    state = "revoked" if t.revoked else "used" if t.used_at else "live"
    return {
        "id": t.id,
        "owner": t.owner,
        "kind": t.kind,
        "role": t.role.value,
        "institution": t.institution,
        "created_at": iso_time(t.created_at),
        "expires_at": iso_time(t.expires_at),
        "last_used_at": iso_time(t.last_used_at),
        "used_at": iso_time(t.used_at),
        "revoked": t.revoked,
        "state": state,
    }


def tokens_table(items: Sequence[JsonDict]) -> None:
    """The expiry date only; the institution and the full times are in `--output json`."""
    _table(
        None,
        ["ID", Col("OWNER", cap=16), "KIND", Col("ROLE", cap=17), "EXPIRES", "STATE"],
        [[t["id"], t["owner"], t["kind"], t["role"], (t["expires_at"] or "never")[:10], t["state"]] for t in items],
    )
    if items:
        _write_wrapped(["Institutions, creation and last use times: --output json."])


def _pools(site: JsonDict) -> str:
    return ", ".join(f"{p['model']} {p['in_use']}/{p['total']}" for p in site["gpus"]) or "-"


def sites_table(items: Sequence[JsonDict]) -> None:
    if not items:
        sys.stdout.write("no sites\n")
        return
    _table(
        None,
        [
            Col("NAME", cap=18),
            Col("INST", cap=12),
            "CC",
            Col("GPUS USED/TOTAL", cap=22),
            "CONN",
            Col("STATE", flex=True),
        ],
        [
            [s["name"], s["institution"], s["country"], _pools(s), "yes" if s["connected"] else "no", _site_state(s)]
            for s in items
        ],
    )


def _site_state(site: JsonDict) -> str:
    return f"{site['state']} ({site['state_reason']})" if site.get("state_reason") else site["state"]


def _quota_weight(w: float) -> str:
    """Weights under `contribution` are GPU-hours: 1234.5 reads better as 1234 than 1.23e+03."""
    return f"{w:.3g}" if abs(w) < 1000 else f"{w:.0f}"


def _share_gpus(x: float) -> str:
    """A fair share in GPUs, to one decimal: 4, 3.3."""
    return f"{round(x, 1):g}"


def quotas_table(view: JsonDict) -> None:
    """Two tables that fit 80 columns: per institution (its share of the federation, and at
    this moment what it holds, asks for and is owed), then per institution and GPU model;
    a footer says what SHARE splits and which entitlement floor is in effect."""
    if not view["rows"]:
        sys.stdout.write("no quotas yet: no institution has GPUs or jobs\n")
        return
    _table(
        None,
        [
            Col("INST", cap=20),
            "CC",
            *(Col(h, right=True) for h in ("WEIGHT", "ENT%", "USE%", "FS", "GUAR", "HELD", "DEMAND", "SHARE")),
        ],
        [
            [
                i["institution"],
                i["country"],
                _quota_weight(i["weight"]),
                f"{i['entitlement_pct']:.1f}",
                f"{i['usage_pct']:.1f}",
                f"{i['fairshare']:.2f}",
                str(i["guarantee"]),
                str(i["held"]),
                str(i["demand"]),
                _share_gpus(i["fair_share_gpus"]),
            ]
            for i in view["institutions"]
        ],
    )
    sys.stdout.write("\n")
    _table(
        None,
        [
            Col("INST", cap=20),
            Col("MODEL", cap=12),
            *(Col(h, right=True) for h in ("OWN", "GUAR", "USE", "HELD", "BORR", "LENT", "PEND")),
        ],
        [
            [
                q["institution"],
                _dash(q["gpu_model"]),
                str(q["owned"]),
                str(q["guarantee"]),
                str(q["in_use"]),
                str(q["held"]),
                str(q["borrowed"]),
                str(q["lent"]),
                str(q["pending"]),
            ]
            for q in view["rows"]
        ],
    )
    sys.stdout.write("\n")
    _write_wrapped([QUOTA_LEGEND, *quota_footer(view)])


QUOTA_LEGEND = (
    "ENT% entitlement and USE% decayed usage (% of the federation), FS fair-share "
    "factor (1 idle, 0.5 on par), GUAR guaranteed, DEMAND held + pending, OWN owned, "
    "USE in use, BORR borrowed, PEND pending GPUs; all keys: --output json."
)


def quota_footer(view: JsonDict) -> list[str]:
    """What SHARE is, and the entitlement floor in effect (it acts only under `contribution`)."""
    share = (
        f"SHARE: each institution's fair share of the {view['capacity']} GPUs that can hold runs now: "
        "weighted max-min over DEMAND (held + pending), guarantees as floors."
    )
    fraction = view["base_grant_fraction"]
    if view["share_policy"] == "contribution":
        floor = (
            f"Entitlement floor: base grant {_quota_weight(view['base_grant'])} in effect, so every institution "
            f"weighs at least {fraction:.0%} of the mean."
            if fraction
            else f"Entitlement floor: base grant {_quota_weight(view['base_grant'])} in effect (no floor fraction)."
        )
    else:
        floor = f"Entitlement floor: none under the {view['share_policy']} policy (weights as set)" + (
            f"; under contribution every institution would weigh at least {fraction:.0%} of the mean."
            if fraction
            else "."
        )
    return [share, floor]


def _tree_label(node: JsonDict) -> str:
    """A user row sits under its project's row: its name alone keeps the table in 80 columns."""
    return str(node["id"]).rsplit("/", 1)[-1] if node["level"] == "user" else str(node["id"])


def tree_table(nodes: Sequence[JsonDict]) -> None:
    indent = {"country": "", "institution": "  ", "project": "    ", "user": "      "}
    _table(
        None,
        [
            Col("ACCOUNT", cap=28),
            *(Col(h, right=True) for h in ("WEIGHT", "ENT%", "USE%", "FS", "HELD", "DEMAND", "SHARE")),
        ],
        [
            [
                indent.get(n["level"], "") + _tree_label(n),
                _quota_weight(n["weight"]),
                f"{n['entitlement_pct']:.1f}",
                f"{n['usage_pct']:.1f}",
                f"{n['fairshare']:.2f}",
                str(n["held"]),
                str(n["demand"]),
                _share_gpus(n["fair_share_gpus"]),
            ]
            for n in nodes
        ],
    )


def print_json_line(data: Any) -> None:
    """One compact JSON object per line (long-running commands announce with it)."""
    sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    sys.stdout.flush()


def project_to_dict(p: ProjectShare) -> JsonDict:
    return {"id": p.id, "institution": p.institution, "name": p.name, "weight": p.weight}


def policy_to_dict(p: PartialSettings) -> JsonDict:
    from minga.common.shares import OPTIONAL_SETTINGS

    s = p.settings
    return {
        "share_policy": s.policy,
        "half_life_seconds": s.half_life_seconds,
        "base_grant": s.base_grant,
        "model_weights": dict(s.model_weights),
        "preemption_grace_seconds": s.preemption_grace_seconds,
        "age_weight": s.age_weight,
        # Issue 10; null from a broker that predates them.
        **{name: getattr(s, name) if name in p.given else None for name in OPTIONAL_SETTINGS},
    }


def projects_table(items: Sequence[JsonDict]) -> None:
    _table(
        None,
        [Col("PROJECT", cap=40), Col("INSTITUTION", cap=20), "WEIGHT"],
        [[p["id"], p["institution"], f"{p['weight']:g}"] for p in items],
    )


def limits_line(lim: JsonDict) -> str:
    """'max GPUs 8, max pending 100, max walltime 1d' (an account's limits)."""
    wall = lim["max_walltime_seconds"]
    return ", ".join(
        (
            f"max GPUs {_unlimited(lim['max_gpus'])}",
            f"max pending {_unlimited(lim['max_pending'])}",
            f"max walltime {'unlimited' if wall is None else limit_duration(wall)}",
        )
    )


def _unlimited(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


def account_limits_table(items: Sequence[JsonDict]) -> None:
    """Limits per user and per project; '-' is unlimited."""
    if not items:
        sys.stdout.write("no limits per user or per project: every account is unlimited\n")
        return
    _table(
        None,
        ["KIND", Col("ACCOUNT", cap=48), "MAX GPUS", "MAX PENDING", "MAX WALLTIME"],
        [
            [
                lim["kind"],
                lim["id"],
                _dash(lim["max_gpus"]),
                _dash(lim["max_pending"]),
                "-" if lim["max_walltime_seconds"] is None else limit_duration(lim["max_walltime_seconds"]),
            ]
            for lim in items
        ],
    )


def policy_table(policy: JsonDict) -> None:
    weights = ", ".join(f"{m}={w:g}" for m, w in sorted(policy["model_weights"].items()))
    _table(
        None,
        ["SETTING", Col("VALUE", wrap=True)],
        [
            ["share policy", policy["share_policy"]],
            ["half-life", format_duration(int(policy["half_life_seconds"]))],
            ["base grant", f"{policy['base_grant']:g}"],
            *_issue10_rows(policy),
            ["preemption grace", format_duration(int(policy["preemption_grace_seconds"]))],
            ["age weight", f"{policy['age_weight']:g} per hour"],
            ["model weights", weights],
            *_webhook_rows(policy),
        ],
    )


def _webhook_rows(policy: JsonDict) -> list[list[str]]:
    """The webhook allow-list (docs/notifications.md); nothing where the answer lacks it."""
    if "webhook_hosts" not in policy:
        return []
    return [["webhook hosts", ", ".join(policy["webhook_hosts"]) or "none (webhooks off)"]]


def _issue10_rows(policy: JsonDict) -> list[list[str]]:
    """The entitlement floor, fair-share preemption and the gang reservations' minimum age,
    in words; `-` where the broker did not say (one older than them)."""
    fraction, threshold = policy.get("base_grant_fraction"), policy.get("preemption_threshold")
    cap, notice, on = (
        policy.get("preemption_cap"),
        policy.get("preemption_notice_seconds"),
        policy.get("fair_share_preemption"),
    )
    min_age = policy.get("reservation_min_age_seconds")
    green = policy.get("low_carbon_default")
    return [
        [
            "entitlement floor",
            "-" if fraction is None else f"{fraction:g} (contribution: at least {fraction:.0%} of the mean weight)",
        ],
        ["fair-share preemption", "-" if on is None else "on" if on else "off"],
        [
            "preemption threshold",
            "-"
            if threshold is None
            else f"{threshold:g} (only for an account under {1 - threshold:.0%} of its fair share)",
        ],
        ["preemption cap", "-" if cap is None else f"{cap:g} (at most {cap:.0%} of the GPUs per cycle)"],
        ["preemption notice", "-" if notice is None else f"{format_duration(int(notice))} (SIGTERM, then SIGKILL)"],
        [
            "reservation min age",
            "-" if min_age is None else f"{format_duration(int(min_age))} (gangs waiting this long reserve first)",
        ],
        ["low-carbon default", "-" if green is None else "on" if green else "off"],
    ]


def usage_table(by: str, lines: Sequence[JsonDict]) -> None:
    """GPU-hours consumed and contributed, then the energy and emissions estimates in a table
    of their own (both together would not fit 80 columns)."""
    _table(
        None,
        [
            Col(by.upper(), cap=20),
            "CC",
            *(Col(h, right=True) for h in ("USED h", "USED norm", "GAVE h", "GAVE norm", "BALANCE")),
        ],
        [
            [
                line["key"],
                line["country"],
                f"{line['consumed_gpu_hours']:.1f}",
                f"{line['consumed_normalized']:.1f}",
                f"{line['contributed_gpu_hours']:.1f}",
                f"{line['contributed_normalized']:.1f}",
                f"{line['balance_normalized']:+.1f}",
            ]
            for line in lines
        ],
    )
    _table(
        "Energy and emissions of the runs that ended (estimates: docs/carbon.md)",
        [Col(by.upper(), cap=28), "CC", *(Col(h, right=True) for h in ("kWh", "kgCO2e"))],
        [
            [line["key"], line["country"], f"{line['energy_kwh']:.1f}", f"{line['emissions_kgco2e']:.1f}"]
            for line in lines
        ],
    )


def broker_status_to_dict(address: str, answer: LeadershipStatus | None, error: str = "") -> JsonDict:
    """One broker of a list: its role, or why it did not answer (role "unreachable")."""
    if answer is None:
        return {
            "address": address,
            "role": "unreachable",
            "leading": False,
            "leader_address": None,
            "leading_since": None,
            "error": error,
        }
    return {
        "address": address,
        "role": answer.role or ("leader" if answer.leading else "standby"),
        "leading": answer.leading,
        "leader_address": answer.leader_address or None,
        "leading_since": iso_time(answer.leading_since),
        "error": None,
    }


def brokers_table(items: Sequence[JsonDict]) -> None:
    """A leader says since when, a standby which broker leads; errors go under the table,
    wrapped in full, since an address and its error rarely fit one row."""
    _table(
        None,
        [Col("ADDRESS", cap=32), "ROLE", Col("STATUS", flex=True)],
        [(b["address"], b["role"], _broker_status(b)) for b in items],
    )
    _write_wrapped([f"{b['address']}: {b['error']}" for b in items if b["error"]])


def _broker_status(b: JsonDict) -> str:
    if b["error"]:
        return "error below"
    if b["leading"]:
        return f"leading since {short_time(b['leading_since'])} UTC"
    return f"leader: {_dash(b['leader_address'])}"


def audit_to_dict(entry: AuditEntry) -> JsonDict:
    return {
        "at": iso_time(entry.at),
        "who": entry.who or None,
        "role": entry.role or None,
        "method": entry.method,
        "target": entry.target,
        "peer": entry.peer,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }


def audit_table(entries: Sequence[JsonDict]) -> None:
    if not entries:
        sys.stdout.write("no audit entries\n")
        return
    _table(
        None,
        ["AT (UTC)", Col("WHO", cap=10), Col("METHOD", cap=24), Col("TARGET", cap=12), Col("OUTCOME", flex=True)],
        [
            [
                short_time(e["at"], seconds=True)[5:],
                _dash(e["who"]),
                _method(e["method"]),
                _dash(e["target"]),
                e["outcome"] if not e["detail"] else f"{e['outcome']}: {e['detail']}",
            ]
            for e in entries
        ],
    )
    _write_wrapped([AUDIT_NOTE])


AUDIT_NOTE = "Times are MM-DD HH:MM:SS UTC; the year, callers' addresses and full details: --output json."


def _method(method: str) -> str:
    """ "AdminService/AddUser" -> "AddUser": the RPC name says what was done."""
    return method.rsplit("/", 1)[-1]
