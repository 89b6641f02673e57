"""Jinja2 template of report.html (kept in Python so it ships without package-data rules)."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>visassoc report – {{ runs | map(attribute='name') | join(' vs ') }}</title>
<link rel="icon" href="data:,">
<style>
:root { --fg:#1d2430; --muted:#667085; --line:#e4e7ec; --bg:#f7f8fa; --accent:#3b6ea8; --bad:#b42318; --good:#2f7d46; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { background:#fff; border-bottom:1px solid var(--line); padding:18px 28px; }
h1 { font-size:20px; margin:0 0 4px; } h2 { font-size:16px; margin:28px 0 10px; } h3 { font-size:14px; margin:0 0 8px; }
main { padding:8px 28px 40px; max-width:1500px; }
.muted { color:var(--muted); font-size:12px; }
.runs { display:grid; grid-template-columns:repeat({{ runs|length }}, minmax(0,1fr)); gap:20px; }
.cards { display:grid; grid-template-columns:repeat(auto-fill, minmax(150px,1fr)); gap:10px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px 12px; }
.card .v { font-size:20px; font-weight:600; } .card .l { font-size:12px; color:var(--muted); }
.figs { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px,1fr)); gap:14px; }
figure { margin:0; background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px; }
figure img { width:100%; height:auto; } figcaption { font-size:12px; color:var(--muted); }
table { border-collapse:collapse; width:100%; background:#fff; font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:5px 8px; text-align:left; vertical-align:top; }
th { background:#f2f4f7; font-weight:600; }
.bad { color:var(--bad); font-weight:600; } .ok { color:var(--good); }
.note { background:#fff8e6; border:1px solid #f5d48a; border-radius:6px; padding:6px 10px; margin:6px 0; font-size:13px; }
.item { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px; margin-bottom:14px; display:grid; grid-template-columns:330px 1fr; gap:16px; }
.item img.thumb { max-width:320px; border-radius:6px; display:block; }
.noimg { width:320px; height:200px; background:#eee; display:flex; align-items:center; justify-content:center; color:var(--muted); }
.ladders { display:grid; grid-template-columns:repeat({{ runs|length }}, minmax(0,1fr)); gap:12px; }
details { margin:0 0 6px; } summary { cursor:pointer; font-weight:600; }
.ladder td:first-child { white-space:nowrap; width:1%; }
.assoc { color:var(--accent); } .chosen { font-weight:600; text-decoration:underline; }
.inv { color:var(--bad); }
</style></head>
<body>
<header><h1>Creative-caption dataset report</h1>
<div class="muted">{% for r in runs %}{{ r.name }} <code>{{ r.dir }}</code>{% if not loop.last %} &nbsp;vs&nbsp; {% endif %}{% endfor %}</div></header>
<main>
<h2>Summary</h2>
<div class="runs">
{% for r in runs %}<section><h3>{{ r.name }}</h3><div class="cards">
{% for label, value, hint in r.cards %}<div class="card"><div class="l">{{ label }}</div><div class="v">{{ value }}</div><div class="muted">{{ hint }}</div></div>
{% endfor %}</div>
{% for n in r.notes %}<div class="note">{{ n }}</div>{% endfor %}
</section>{% endfor %}
</div>

<h2>Plots</h2>
<div class="figs">
{% for cap, uri in figures %}<figure><img alt="{{ cap }}" src="{{ uri }}"><figcaption>{{ cap }}</figcaption></figure>
{% endfor %}</div>

<h2>Per level</h2>
<div class="runs">
{% for r in runs %}<section><h3>{{ r.name }}</h3>
<table><thead><tr><th>level</th><th>valid</th><th>assoc. concr.</th><th>caption concr.</th><th>MiniLM dist.</th><th>WordNet dist.</th><th>text R@1</th><th>CLIPScore</th><th>fluency gap</th><th>distinct-2</th><th>most frequent associations</th></tr></thead>
<tbody>{% for t in r.table %}<tr><td title="{{ t.name }}">{{ t.level }} <span class="muted">{{ t.name }}</span></td><td>{{ t.valid }}</td><td>{{ t.assoc_conc }}</td><td>{{ t.cap_conc }}</td><td>{{ t.minilm }}</td><td>{{ t.wordnet }}</td><td>{{ t.r1 }}</td>
<td{% if t.below_foil %} class="bad" title="below FOIL negatives"{% endif %}>{{ t.clip }}{% if t.below_foil %} ▼ below FOIL{% endif %}</td><td>{{ t.fluency }}</td><td>{{ t.d2 }}</td><td>{{ t.top }}</td></tr>{% endfor %}</tbody></table>
{% if r.reasons %}<p class="muted">Invalid caption reasons: {% for k, v in r.reasons.items() %}{{ k }} ({{ v }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% if r.errors %}<p class="muted">Errors per stage: {% for k, v in r.errors.items() %}{{ k }} ({{ v }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% if r.foils %}<p class="muted">FOIL examples: {% for f in r.foils %}“{{ f.caption }}” ({{ f.replaced }} → {{ f.new }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
</section>{% endfor %}
</div>

<h2>Gallery</h2>
{% for it in gallery %}<div class="item">
<div>{% if it.thumb %}<img class="thumb" alt="image {{ it.image_id }}" src="{{ it.thumb }}">{% else %}<div class="noimg">image not found</div>{% endif %}
<div class="muted">{{ it.image_id }}</div>{% if it.caption %}<div>“{{ it.caption }}”</div>{% endif %}</div>
<div class="ladders">{% for rr in it.runs %}<div>{% if runs|length > 1 %}<h3>{{ rr.name }}</h3>{% endif %}
{% for w in rr.ladders %}<details{% if loop.first %} open{% endif %}><summary>{{ w.word }} <span class="muted">{{ w.pos }}{% if w.concreteness is not none %}, concreteness {{ '%.2f' % w.concreteness }}{% endif %}</span></summary>
<table class="ladder">{% for row in w.rows %}<tr><td title="{{ level_names[row.level] }}">L{{ row.level }}</td>
<td>{% for a in row.associations %}<span class="assoc{% if a == row.chosen %} chosen{% endif %}">{{ a }}</span>{% if not loop.last %}, {% endif %}{% endfor %}</td>
<td>{% if row.caption is none %}<span class="muted">no caption</span>{% elif row.valid %}{{ row.caption }}{% else %}<span class="inv" title="{{ row.reason or '' }}">✗ {{ row.caption }}</span>{% endif %}</td></tr>{% endfor %}</table></details>
{% else %}<p class="muted">no salient words</p>{% endfor %}</div>{% endfor %}</div>
</div>{% endfor %}
</main></body></html>
"""
