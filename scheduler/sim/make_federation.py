"""Write the example federation from the public traces, by stated rules.

The file is `scheduler/sim/data/latam-federation.toml` (package data; the repository's
`examples/latam-federation.toml` links to it).

Rules (also written into the file's header and docs/simulator.md):

1. Nodes: `alibaba-openb-2023/openb_node_list_gpu_node.csv`, sorted by `sn`; every
   `NODE_STRIDE`-th node is kept (index % 8 == 0), scaling the 1,213 nodes (~6,200 GPUs)
   down to 770 GPUs, near the 968 of the Helios Venus cluster whose quotas give the weights.
2. Sites: the kept nodes, still in `sn` order, are cut into runs of consecutive nodes with
   the same GPU model; each run is chunked into sites of at most `NODES_PER_SITE` nodes.
3. Owners: in every country the last institution listed owns no site; the others own
   sites, dealt round-robin in site order over the owners in file order.
4. Weights: the 25 Venus virtual clusters, sorted by mean daily quota (descending, ties by
   name), are dealt to institutions in file order (institution k gets VC k mod 25); an
   institution's weight is that VC's mean daily quota in GPUs, at least 1.
5. Guarantees: owners are guaranteed their own sites (no explicit guarantee). The GPU-less
   institutions share an explicit guarantee of `RESERVE_FRACTION` of the federation's GPUs,
   split in proportion to their weights (rounded down, at least 1), in the most plentiful
   model.
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter
from pathlib import Path
from typing import NotRequired, TypedDict

from minga.common.carbon import DEFAULT_PUE, INTENSITY_SOURCE, INTENSITY_YEAR, default_intensity
from minga.scheduler.sim.examples import example_federation

NODE_STRIDE = 8
NODES_PER_SITE = 2
RESERVE_FRACTION = 0.10

# Per-GPU memory (MB) of the trace's models; G1-G3 are undisclosed, so 0 (unknown).
MODEL_MEMORY_MB = {
    "V100M16": 16384,
    "V100M32": 32768,
    "P100": 16384,
    "T4": 16384,
    "A10": 24576,
    "G1": 0,
    "G2": 0,
    "G3": 0,
}
# Normalization weights for the trace's models (G1-G3 assumed between V100 and A100).
# Board power (W) of the trace's models, from the vendors' data sheets: V100 SXM2 300, P100
# PCIe 250, T4 70, A10 150. The trace does not say which GPUs G2 and G3 are: the broker's
# fallback for an unknown model (common/carbon.py), 300.
GPU_WATTS = {"G2": 300.0, "G3": 300.0, "V100M32": 300.0, "V100M16": 300.0, "P100": 250.0, "T4": 70.0, "A10": 150.0}
MODEL_WEIGHTS = {"G2": 0.5, "G3": 0.6, "V100M32": 0.3, "V100M16": 0.3, "P100": 0.2, "T4": 0.1, "A10": 0.25}

# (ISO code, country, institutions): real universities and research centres of the region.
COUNTRIES: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "AR",
        "Argentina",
        (
            ("uba", "Universidad de Buenos Aires"),
            ("unlp", "Universidad Nacional de La Plata"),
            ("unc-ar", "Universidad Nacional de Cordoba"),
        ),
    ),
    (
        "BO",
        "Bolivia",
        (
            ("umsa", "Universidad Mayor de San Andres"),
            ("umss", "Universidad Mayor de San Simon"),
            ("ucb-bo", "Universidad Catolica Boliviana"),
        ),
    ),
    (
        "BR",
        "Brasil",
        (
            ("usp", "Universidade de Sao Paulo"),
            ("unicamp", "Universidade Estadual de Campinas"),
            ("lncc", "Laboratorio Nacional de Computacao Cientifica"),
            ("ufrj", "Universidade Federal do Rio de Janeiro"),
        ),
    ),
    (
        "CL",
        "Chile",
        (
            ("uchile", "Universidad de Chile"),
            ("puc-cl", "Pontificia Universidad Catolica de Chile"),
            ("nlhpc", "Laboratorio Nacional de Computacion de Alto Rendimiento"),
            ("cenia", "Centro Nacional de Inteligencia Artificial"),
        ),
    ),
    (
        "CO",
        "Colombia",
        (
            ("unal-co", "Universidad Nacional de Colombia"),
            ("uniandes", "Universidad de los Andes"),
            ("udea", "Universidad de Antioquia"),
        ),
    ),
    (
        "CR",
        "Costa Rica",
        (
            ("ucr", "Universidad de Costa Rica"),
            ("tec-cr", "Instituto Tecnologico de Costa Rica"),
            ("cenat", "Centro Nacional de Alta Tecnologia"),
        ),
    ),
    (
        "CU",
        "Cuba",
        (
            ("uh-cu", "Universidad de La Habana"),
            ("uclv", "Universidad Central Marta Abreu de Las Villas"),
            ("cujae", "Universidad Tecnologica de La Habana"),
        ),
    ),
    (
        "DO",
        "Republica Dominicana",
        (
            ("uasd", "Universidad Autonoma de Santo Domingo"),
            ("intec", "Instituto Tecnologico de Santo Domingo"),
            ("pucmm", "Pontificia Universidad Catolica Madre y Maestra"),
        ),
    ),
    (
        "EC",
        "Ecuador",
        (
            ("epn", "Escuela Politecnica Nacional"),
            ("espol", "Escuela Superior Politecnica del Litoral"),
            ("usfq", "Universidad San Francisco de Quito"),
        ),
    ),
    (
        "SV",
        "El Salvador",
        (
            ("ues", "Universidad de El Salvador"),
            ("uca-sv", "Universidad Centroamericana Jose Simeon Canas"),
            ("udb", "Universidad Don Bosco"),
        ),
    ),
    (
        "GT",
        "Guatemala",
        (
            ("usac", "Universidad de San Carlos de Guatemala"),
            ("uvg", "Universidad del Valle de Guatemala"),
            ("url-gt", "Universidad Rafael Landivar"),
        ),
    ),
    (
        "HN",
        "Honduras",
        (
            ("unah", "Universidad Nacional Autonoma de Honduras"),
            ("zamorano", "Escuela Agricola Panamericana"),
            ("unitec-hn", "Universidad Tecnologica Centroamericana"),
        ),
    ),
    (
        "MX",
        "Mexico",
        (
            ("unam", "Universidad Nacional Autonoma de Mexico"),
            ("ipn", "Instituto Politecnico Nacional"),
            ("cinvestav", "Centro de Investigacion y de Estudios Avanzados"),
            ("itesm", "Tecnologico de Monterrey"),
        ),
    ),
    (
        "NI",
        "Nicaragua",
        (
            ("unan", "Universidad Nacional Autonoma de Nicaragua"),
            ("uni-ni", "Universidad Nacional de Ingenieria"),
            ("uca-ni", "Universidad Centroamericana"),
        ),
    ),
    (
        "PA",
        "Panama",
        (
            ("up-pa", "Universidad de Panama"),
            ("utp", "Universidad Tecnologica de Panama"),
            ("indicasat", "Instituto de Investigaciones Cientificas y Servicios de Alta Tecnologia"),
        ),
    ),
    (
        "PY",
        "Paraguay",
        (
            ("una-py", "Universidad Nacional de Asuncion"),
            ("uc-py", "Universidad Catolica Nuestra Senora de la Asuncion"),
            ("pti", "Parque Tecnologico Itaipu"),
        ),
    ),
    (
        "PE",
        "Peru",
        (
            ("pucp", "Pontificia Universidad Catolica del Peru"),
            ("uni-pe", "Universidad Nacional de Ingenieria"),
            ("unmsm", "Universidad Nacional Mayor de San Marcos"),
        ),
    ),
    (
        "UY",
        "Uruguay",
        (
            ("udelar", "Universidad de la Republica"),
            ("ort-uy", "Universidad ORT Uruguay"),
            ("pasteur-uy", "Institut Pasteur de Montevideo"),
        ),
    ),
    (
        "VE",
        "Venezuela",
        (
            ("ucv", "Universidad Central de Venezuela"),
            ("usb", "Universidad Simon Bolivar"),
            ("ivic", "Instituto Venezolano de Investigaciones Cientificas"),
        ),
    ),
)


class SiteRow(TypedDict):
    """One site of the file; its owner, country and name are dealt after grouping (rule 3)."""

    first_sn: str
    model: str
    nodes: int
    gpus: int
    largest_node: int
    cpus: float
    memory_mb: int
    institution: NotRequired[str]
    country: NotRequired[str]
    name: NotRequired[str]


class InstitutionRow(TypedDict):
    """One institution of the file; only the GPU-less ones have a `guarantee` (rule 5)."""

    slug: str
    name: str
    country: str
    weight: float
    venus_vc: str
    owner: bool
    guarantee: NotRequired[dict[str, int]]


class FederationRows(TypedDict):
    """What `build` derives from the traces and `render` writes."""

    sites: list[SiteRow]
    institutions: list[InstitutionRow]
    total: int
    quotas: list[tuple[str, float]]
    reserve_model: str
    reserve: int


def read_nodes(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["sn"])


def group_sites(nodes: list[dict[str, str]]) -> list[SiteRow]:
    """Rules 1-2: every NODE_STRIDE-th node, consecutive same-model runs, chunks of NODES_PER_SITE."""
    kept = nodes[::NODE_STRIDE]
    runs: list[list[dict[str, str]]] = []
    for node in kept:
        if runs and runs[-1][0]["model"] == node["model"]:
            runs[-1].append(node)
        else:
            runs.append([node])
    sites: list[SiteRow] = []
    for run in runs:
        for i in range(0, len(run), NODES_PER_SITE):
            chunk = run[i : i + NODES_PER_SITE]
            gpus = [int(n["gpu"]) for n in chunk]
            sites.append(
                {
                    "first_sn": chunk[0]["sn"],
                    "model": chunk[0]["model"],
                    "nodes": len(chunk),
                    "gpus": sum(gpus),
                    "largest_node": max(gpus),
                    "cpus": sum(int(n["cpu_milli"]) for n in chunk) / 1000.0,
                    "memory_mb": MODEL_MEMORY_MB.get(chunk[0]["model"], 0),
                }
            )
    return sites


def venus_quotas(path: Path) -> list[tuple[str, float]]:
    """Rule 4: (VC, mean daily quota), sorted by quota descending, ties by name."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    vcs = [k for k in rows[0] if k not in ("date", "total")]
    means = {vc: sum(int(r[vc]) for r in rows) / len(rows) for vc in vcs}
    return sorted(means.items(), key=lambda kv: (-kv[1], kv[0]))


def build(traces: Path) -> FederationRows:
    nodes = read_nodes(traces / "alibaba-openb-2023" / "openb_node_list_gpu_node.csv")
    sites = group_sites(nodes)
    quotas = venus_quotas(traces / "helios-venus-2020" / "cluster_gpu_number.csv")
    institutions: list[InstitutionRow] = []
    for code, _name, insts in COUNTRIES:
        for j, (slug, full) in enumerate(insts):
            k = len(institutions)
            vc, quota = quotas[k % len(quotas)]
            institutions.append(
                {
                    "slug": slug,
                    "name": full,
                    "country": code,
                    "weight": round(max(1.0, quota), 2),
                    "venus_vc": vc,
                    "owner": j < len(insts) - 1,
                }
            )
    owners = [i for i in institutions if i["owner"]]
    for n, site in enumerate(sites):
        inst = owners[n % len(owners)]
        site["institution"], site["country"] = inst["slug"], inst["country"]
        site["name"] = f"{inst['slug']}-{re.sub(r'[^0-9]', '', site['first_sn']).lstrip('0') or '0'}"
    total = sum(s["gpus"] for s in sites)
    plentiful: Counter[str] = Counter()
    for s in sites:
        plentiful[s["model"]] += s["gpus"]
    model = max(plentiful.items(), key=lambda kv: (kv[1], kv[0]))[0]
    gpuless = [i for i in institutions if not i["owner"]]
    reserve = int(RESERVE_FRACTION * total)
    wsum = sum(i["weight"] for i in gpuless)
    for i in gpuless:
        i["guarantee"] = {model: max(1, int(reserve * i["weight"] / wsum))}
    return {
        "sites": sites,
        "institutions": institutions,
        "total": total,
        "quotas": quotas,
        "reserve_model": model,
        "reserve": reserve,
    }


def render(fed: FederationRows) -> str:
    doc = (__doc__ or "").split("Rules (also", 1)[1].split("\n", 1)[1]
    lines = [
        "# minga example: a Latin American federation of 19 countries.",
        "# GENERATED by `python -m minga.scheduler.sim.make_federation` (minga sim make-federation);",
        "# do not edit by hand. Sources (read from ../shared/traces, never copied):",
        "#   sites  <- alibaba-openb-2023/openb_node_list_gpu_node.csv (ATC'23, Weng et al.)",
        "#   weights, guarantees <- helios-venus-2020/cluster_gpu_number.csv (SC'21, Hu et al.)",
        "# Rules:",
    ]
    lines += ["#" + (" " + ln.strip() if ln.strip() else "") for ln in doc.strip().splitlines()]
    lines += [
        f"# Result: {len(fed['sites'])} sites, {fed['total']} GPUs, {len(fed['institutions'])} institutions;",
        f"# GPU-less institutions share {fed['reserve']} {fed['reserve_model']} GPUs of guarantees.",
        "",
        "[settings]",
        'policy = "static"          # weights below are the entitlements the metrics use',
        "half_life_seconds = 604800.0",
        "base_grant = 1.0",
        "preemption_grace_seconds = 600.0",
        "age_weight = 0.0",
        "cycle_seconds = 30.0",
        "",
        "[settings.model_weights]",
    ]
    lines += [f"{m} = {w}" for m, w in MODEL_WEIGHTS.items()]
    lines += ["", "[countries]"]
    lines += [f'{code} = "{name}"' for code, name, _ in COUNTRIES]
    lines += [
        "",
        "# Energy and emissions (docs/carbon.md): GPUs x W x hours x PUE x the country's intensity.",
        "[carbon]",
        f"pue = {DEFAULT_PUE}",
        "",
        f"# gCO2e/kWh, {INTENSITY_YEAR}: {INTENSITY_SOURCE}.",
        "[carbon.intensity]",
    ]
    lines += [f"{code} = {default_intensity(code).value}" for code, _, _ in COUNTRIES]
    lines += ["", "# Board power in W (vendor data sheets; G2 and G3: the fallback for an unknown model)."]
    lines += ["[carbon.gpu_watts]"]
    lines += [f"{m} = {w}" for m, w in GPU_WATTS.items()]
    for i in fed["institutions"]:
        lines += [
            "",
            "[[institutions]]",
            f'slug = "{i["slug"]}"',
            f'name = "{i["name"]}"',
            f'country = "{i["country"]}"',
            f"weight = {i['weight']}   # Venus VC {i['venus_vc']}",
        ]
        if "guarantee" in i:
            g = ", ".join(f"{m} = {n}" for m, n in i["guarantee"].items())
            lines.append(f"guarantee = {{ {g} }}")
    for s in fed["sites"]:
        lines += [
            "",
            "[[sites]]",
            f'name = "{s["name"]}"',
            f'institution = "{s["institution"]}"',
            f'country = "{s["country"]}"',
            f'model = "{s["model"]}"',
            f"gpus = {s['gpus']}",
            f"nodes = {s['nodes']}",
            f"largest_node = {s['largest_node']}",
            f"cpus = {s['cpus']}",
            f"memory_mb = {s['memory_mb']}",
            f'first_node = "{s["first_sn"]}"',
        ]
    return "\n".join(lines) + "\n"


def default_traces_dir() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "traces"


def write(traces: Path, out: Path) -> FederationRows:
    fed = build(traces)
    out.write_text(render(fed))
    return fed


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--traces-dir", type=Path, default=default_traces_dir())
    p.add_argument("--out", type=Path, default=example_federation())
    a = p.parse_args(argv)
    fed = write(a.traces_dir, a.out)
    print(f"wrote {a.out}: {len(fed['sites'])} sites, {fed['total']} GPUs, {len(fed['institutions'])} institutions")


if __name__ == "__main__":
    main()
