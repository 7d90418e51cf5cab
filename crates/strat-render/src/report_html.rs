//! The run report as one self-contained HTML page (`--report FILE.html`):
//! a summary, charts as inline SVG, a sortable table of every stratum, and
//! the JSON report itself embedded (`<script type="application/json"
//! id="strat-report">`), so the page's numbers are the JSON report's — it is
//! drawn from that JSON and nothing else. No network: no fonts, scripts or
//! styles from elsewhere.

use std::fmt::Write;

use serde_json::Value;

/// Where the page's JSON report begins.
const EMBEDDED: &str = "<script type=\"application/json\" id=\"strat-report\">";

/// Groups shown in a chart; the smaller ones are folded into one bar.
const SHOWN: usize = 15;

/// The page for `report`, the JSON of `strat_engine::report::to_json`.
pub fn to_html(report: &Value) -> String {
    let title = format!("strat report: {}", text(&report["rule_file"]));
    let own = strata(report);
    let mut body = String::new();
    body += &summary(report, &own);
    body += &charts(report, &own);
    body += &strata_table(&own, "Every stratum");
    for up in report["upstream"].as_array().into_iter().flatten() {
        let theirs = strata(up);
        let _ = write!(body, "<h2>Read from {}</h2>", esc(&text(&up["statement"])));
        body += &totals(up, &theirs);
        body += &strata_table(&theirs, "Its strata");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main>\
         {EMBEDDED}{}</script>\
         <script>{SCRIPT}</script></body></html>\n",
        esc(&title),
        embedded_json(report),
    )
}

/// The JSON report a page embeds (what [`to_html`] drew it from), read back;
/// `None` for a page without one.
pub fn embedded_report(page: &str) -> Option<Value> {
    let at = page.find(EMBEDDED)? + EMBEDDED.len();
    let end = at + page[at..].find("</script>")?;
    serde_json::from_str(&page[at..end]).ok()
}

/// The JSON report inside a `<script>`: `</` written `<\/` (still the same
/// JSON), so no value can close the element.
fn embedded_json(report: &Value) -> String {
    serde_json::to_string(report)
        .unwrap_or_default()
        .replace("</", "<\\/")
}

fn summary(report: &Value, strata: &[Stratum]) -> String {
    let mut s = format!(
        "<h1>{}</h1><p class=\"sub\">{} · strat {}</p>",
        esc(&text(&report["statement"])),
        esc(&text(&report["rule_file"])),
        esc(&text(&report["strat_version"])),
    );
    s += "<dl class=\"facts\">";
    let mut fact = |k: &str, v: String| {
        let _ = write!(s, "<dt>{k}</dt><dd>{v}</dd>");
    };
    fact("rule file md5", code(&text(&report["rule_md5"])));
    fact("seed", esc(&text(&report["seed"])));
    for input in report["inputs"].as_array().into_iter().flatten() {
        let what = format!(
            "{} · fingerprint {}",
            code(&text(&input["path"])),
            code(&text(&input["fingerprint"]))
        );
        fact(&format!("table {}", esc(&text(&input["table"]))), what);
    }
    let outputs = match &report["output"] {
        Value::Null => report["outputs"].as_array().cloned().unwrap_or_default(),
        one => vec![one.clone()],
    };
    for o in &outputs {
        let part = o["split"].as_str().map(|p| format!(" ({})", esc(p)));
        let what = format!(
            "{}{} · md5 {} · {} bytes",
            code(&text(&o["path"])),
            part.unwrap_or_default(),
            code(&text(&o["md5"])),
            int(&o["bytes"])
        );
        fact("sample", what);
    }
    s += "</dl>";
    s + &totals(report, strata)
}

/// N, n, strata, shortfalls, the units left out, and the warnings.
fn totals(report: &Value, strata: &[Stratum]) -> String {
    let short = strata
        .iter()
        .filter(|s| s.target.is_some_and(|t| s.selected < t))
        .count();
    let strata = strata.len();
    let mut s = String::new();
    if let Some(a) = report["as_of"].as_object() {
        let _ = write!(
            s,
            "<p class=\"as-of\"><code>{}</code>: {} rows read, <b>{}</b> units with a state, {} with no row in the window (left out)</p>",
            esc(&text(&a["clause"])),
            int(&a["rows_read"]),
            int(&a["units_with_state"]),
            int(&a["units_without_state"])
        );
    }
    s += "<ul class=\"totals\">";
    let _ = write!(
        s,
        "<li><b>{}</b> units (N)</li>",
        int(&report["population"])
    );
    let _ = write!(
        s,
        "<li><b>{}</b> selected (n)</li>",
        int(&report["selected"])
    );
    let _ = write!(s, "<li><b>{strata}</b> strata</li>");
    let class = if short > 0 { " class=\"alert\"" } else { "" };
    let _ = write!(
        s,
        "<li{class}><b>{short}</b> strata short of their target</li>"
    );
    for (key, what) in [
        ("null_units", "rows without a unit"),
        ("excluded_units", "units excluded"),
        ("having_dropped_units", "units dropped by `having`"),
    ] {
        if report[key].as_u64().unwrap_or(0) > 0 {
            let _ = write!(s, "<li><b>{}</b> {}</li>", int(&report[key]), esc(what));
        }
    }
    s += "</ul>";
    for w in report["warnings"].as_array().into_iter().flatten() {
        let _ = write!(s, "<p class=\"warning\">warning: {}</p>", esc(&text(w)));
    }
    s
}

/// One stratum's numbers, read from the JSON.
struct Stratum {
    label: String,
    /// The first stratum value: what the charts group by.
    group: String,
    population: f64,
    target: Option<f64>,
    probability: Option<f64>,
    selected: f64,
    weight: Option<f64>,
    parts: Vec<(String, f64)>,
}

fn strata(report: &Value) -> Vec<Stratum> {
    // A split's parts in listing order (JSON objects keep their keys sorted).
    let names: Vec<String> = report["split_names"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .collect();
    let parts = |s: &Value| -> Vec<(String, f64)> {
        names
            .iter()
            .map(|n| (n.clone(), num(&s["splits"][n])))
            .collect()
    };
    let all = report["strata"].as_array().into_iter().flatten();
    all.map(|s| Stratum {
        label: text(&s["stratum"]),
        group: s["values"].get(0).map_or_else(|| text(&s["stratum"]), text),
        population: num(&s["population"]),
        target: s["n_h"].as_f64(),
        probability: s["p_h"].as_str().and_then(rational),
        selected: num(&s["selected"]),
        weight: s["weight"].as_f64(),
        parts: parts(s),
    })
    .collect()
}

/// A stratum or a group of strata in a chart.
#[derive(Default, Clone)]
struct Group {
    label: String,
    population: f64,
    target: f64,
    expected: f64,
    selected: f64,
    parts: Vec<(String, f64)>,
}

impl Group {
    /// `groups` added up, under `label` (their parts keep their names).
    fn sum(label: String, groups: &[Group]) -> Group {
        let parts = groups.first().map(|g| &g.parts[..]).unwrap_or_default();
        let mut sum = Group {
            label,
            parts: parts.iter().map(|(n, _)| (n.clone(), 0.0)).collect(),
            ..Group::default()
        };
        groups.iter().for_each(|g| sum.add(g));
        sum
    }

    fn add(&mut self, s: &Group) {
        self.population += s.population;
        self.target += s.target;
        self.expected += s.expected;
        self.selected += s.selected;
        for (i, (_, c)) in s.parts.iter().enumerate() {
            self.parts[i].1 += c;
        }
    }
}

/// Groups by the first stratum value (the strata themselves when there is
/// one value), the largest first, the rest folded into one.
fn groups(strata: &[Stratum]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for s in strata {
        let g = Group {
            label: s.group.clone(),
            population: s.population,
            target: s.target.unwrap_or(0.0),
            expected: s.probability.unwrap_or(0.0) * s.population,
            selected: s.selected,
            parts: s.parts.clone(),
        };
        match groups.iter_mut().find(|x| x.label == g.label) {
            Some(x) => x.add(&g),
            None => groups.push(g),
        }
    }
    groups.sort_by(|a, b| b.population.total_cmp(&a.population));
    if groups.len() > SHOWN + 1 {
        let rest = groups.split_off(SHOWN);
        groups.push(Group::sum(format!("{} others", rest.len()), &rest));
    }
    groups
}

fn charts(report: &Value, strata: &[Stratum]) -> String {
    if strata.is_empty() {
        return String::new();
    }
    let groups = groups(strata);
    let by = if strata.iter().any(|s| s.group != s.label) {
        "by the first stratum value"
    } else {
        "by stratum"
    };
    let population = num(&report["population"]).max(1.0);
    let selected = num(&report["selected"]).max(1.0);
    let mut s = String::from("<h2>Shape</h2>");
    if strata.iter().any(|s| !s.parts.is_empty()) {
        return s + &parts_chart(&groups, by);
    }
    let shares: Vec<Row> = groups
        .iter()
        .map(|g| Row {
            label: g.label.clone(),
            values: vec![g.population / population, g.selected / selected],
            alert: false,
        })
        .collect();
    let legend = ["population share", "sample share"];
    s += &bars(
        &format!("Population and sample share, {by}"),
        &legend,
        &shares,
        percent,
    );
    let about = strata.iter().any(|s| s.probability.is_some());
    let targets: Vec<Row> = groups
        .iter()
        .map(|g| {
            let want = if about { g.expected } else { g.target };
            Row {
                label: g.label.clone(),
                values: vec![want, g.selected],
                alert: !about && g.selected < g.target,
            }
        })
        .collect();
    let (title, legend) = if about {
        (
            "Expected and realised units (take about)",
            ["expected", "selected"],
        )
    } else {
        (
            "Target and selected units (shortfalls in red)",
            ["target", "selected"],
        )
    };
    s += &bars(&format!("{title}, {by}"), &legend, &targets, count);
    s + &weights_chart(strata)
}

/// The weights of the largest strata.
fn weights_chart(strata: &[Stratum]) -> String {
    let mut largest: Vec<&Stratum> = strata.iter().filter(|s| s.weight.is_some()).collect();
    largest.sort_by(|a, b| b.population.total_cmp(&a.population));
    largest.truncate(SHOWN);
    let rows: Vec<Row> = largest
        .iter()
        .map(|s| Row {
            label: s.label.clone(),
            values: vec![s.weight.unwrap_or(0.0)],
            alert: false,
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    bars("Weights of the largest strata", &["weight"], &rows, weight)
}

/// A split: each group's rows by part, as shares of the group.
fn parts_chart(groups: &[Group], by: &str) -> String {
    let names: Vec<&str> = groups[0].parts.iter().map(|(n, _)| n.as_str()).collect();
    let all = Group::sum("all".into(), groups);
    let rows: Vec<Row> = std::iter::once(&all)
        .chain(groups)
        .map(|g| {
            let total = g.parts.iter().map(|(_, c)| c).sum::<f64>().max(1.0);
            Row {
                label: g.label.clone(),
                values: g.parts.iter().map(|(_, c)| c / total).collect(),
                alert: false,
            }
        })
        .collect();
    stacked(&format!("Each part's share, {by}"), &names, &rows)
}

struct Row {
    label: String,
    values: Vec<f64>,
    /// Drawn in the alert colour (a shortfall).
    alert: bool,
}

const LABEL_W: f64 = 170.0;
const CHART_W: f64 = 720.0;
const BAR_H: f64 = 11.0;

/// Horizontal bars, one per value of each row, on one scale.
fn bars(title: &str, legend: &[&str], rows: &[Row], show: fn(f64) -> String) -> String {
    let max = rows
        .iter()
        .flat_map(|r| r.values.iter().copied())
        .fold(0.0, f64::max);
    let scale = if max > 0.0 {
        (CHART_W - LABEL_W - 90.0) / max
    } else {
        0.0
    };
    let row_h = BAR_H * legend.len() as f64 + 8.0;
    let mut svg = String::new();
    for (i, r) in rows.iter().enumerate() {
        let y0 = i as f64 * row_h + 4.0;
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{}\" y=\"{:.1}\">{}</text>",
            LABEL_W - 6.0,
            y0 + row_h / 2.0,
            esc(&r.label)
        );
        for (j, v) in r.values.iter().enumerate() {
            let class = if r.alert && j == 1 {
                "alert".to_string()
            } else {
                format!("s{j}")
            };
            let (y, w) = (y0 + j as f64 * BAR_H, v * scale);
            let tip = format!("{}: {} {}", r.label, legend[j], show(*v));
            let _ = write!(
                svg,
                "<rect class=\"bar {class}\" x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\"><title>{}</title></rect>\
                 <text class=\"value\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                BAR_H - 2.0,
                esc(&tip),
                LABEL_W + w + 4.0,
                y + BAR_H - 3.0,
                esc(&show(*v)),
            );
        }
    }
    figure(title, legend, &svg, rows.len() as f64 * row_h + 8.0, "s")
}

/// One bar per row, its segments the row's values (shares adding up to 1).
fn stacked(title: &str, legend: &[&str], rows: &[Row]) -> String {
    let width = CHART_W - LABEL_W - 10.0;
    let row_h = BAR_H + 10.0;
    let mut svg = String::new();
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{}\" y=\"{:.1}\">{}</text>",
            LABEL_W - 6.0,
            y + BAR_H - 2.0,
            esc(&r.label)
        );
        let mut x = LABEL_W;
        for (j, v) in r.values.iter().enumerate() {
            let tip = format!("{}: {} {}", r.label, legend[j], percent(*v));
            let _ = write!(
                svg,
                "<rect class=\"bar p{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{BAR_H}\"><title>{}</title></rect>",
                j % 6,
                v * width,
                esc(&tip)
            );
            x += v * width;
        }
    }
    figure(title, legend, &svg, rows.len() as f64 * row_h + 8.0, "p")
}

/// A chart with its title and legend; `series` is the class prefix of its colours.
fn figure(title: &str, legend: &[&str], svg: &str, height: f64, series: &str) -> String {
    let mut keys = String::new();
    for (j, name) in legend.iter().enumerate() {
        let class = if series == "p" {
            format!("p{}", j % 6)
        } else {
            format!("s{j}")
        };
        let _ = write!(keys, "<span class=\"key {class}\"></span>{} ", esc(name));
    }
    format!(
        "<figure><figcaption>{}</figcaption><div class=\"legend\">{keys}</div>\
         <svg viewBox=\"0 0 {CHART_W} {height:.0}\" role=\"img\" aria-label=\"{}\">{svg}</svg></figure>",
        esc(title),
        esc(title)
    )
}

/// Every stratum, sortable by any column (the page's script).
fn strata_table(strata: &[Stratum], title: &str) -> String {
    let names: Vec<String> = strata
        .first()
        .map(|s| s.parts.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let mut s = format!(
        "<h2>{}</h2><div class=\"scroll\"><table class=\"sortable\"><thead><tr class=\"head\">",
        esc(title)
    );
    let mut heads = vec!["stratum", "N_h", "target", "selected", "weight"];
    heads.extend(names.iter().map(String::as_str));
    for h in heads {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s += "</tr></thead><tbody>";
    for st in strata {
        let short = st.target.is_some_and(|t| st.selected < t);
        s += if short {
            "<tr class=\"alert\">"
        } else {
            "<tr>"
        };
        let target = match (st.target, st.probability) {
            (Some(t), _) => (t, count(t)),
            (None, Some(p)) => (p, format!("p = {}", percent(p))),
            _ => (0.0, String::new()),
        };
        let mut cells = vec![
            (None, esc(&st.label)),
            (Some(st.population), count(st.population)),
            (Some(target.0), target.1),
            (Some(st.selected), count(st.selected)),
            (st.weight, st.weight.map(weight).unwrap_or_default()),
        ];
        cells.extend(st.parts.iter().map(|(_, c)| (Some(*c), count(*c))));
        for (v, shown) in cells {
            match v {
                Some(v) => {
                    let _ = write!(s, "<td class=\"n\" data-v=\"{v}\">{shown}</td>");
                }
                None => {
                    let _ = write!(s, "<td>{shown}</td>");
                }
            }
        }
        s += "</tr>";
    }
    s + "</tbody></table></div>"
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// A `p_h` of the JSON report ("1/200") as a number.
fn rational(s: &str) -> Option<f64> {
    match s.split_once('/') {
        Some((n, d)) => Some(n.trim().parse::<f64>().ok()? / d.trim().parse::<f64>().ok()?),
        None => s.trim().parse().ok(),
    }
}

fn int(v: &Value) -> String {
    count(num(v))
}

/// A count with thousands separators.
fn count(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn weight(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn code(s: &str) -> String {
    format!("<code>{}</code>", esc(s))
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
:root{--s0:#4e79a7;--s1:#f28e2b;--alert:#d62728;--ink:#222;--muted:#666;--line:#ddd}\
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--ink);margin:0}\
main{max-width:1100px;margin:0 auto;padding:1rem 1.25rem 3rem}\
h1{font-size:1.6rem;margin:.5rem 0 0}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line)}\
.sub{color:var(--muted);margin:.2rem 0 1rem}\
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}\
dl.facts dt{color:var(--muted)}dl.facts dd{margin:0;overflow-wrap:anywhere}\
ul.totals{display:flex;flex-wrap:wrap;gap:.4rem 1.5rem;padding:0;list-style:none}\
.alert{color:var(--alert)}.warning{background:#fff4e5;border-left:4px solid #f0a020;padding:.4rem .7rem}\
figure{margin:1rem 0}figcaption{font-weight:600}svg{width:100%;height:auto;display:block}\
.legend{font-size:.85rem;color:var(--muted)}.key{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 .6em}\
.s0{fill:var(--s0);background:var(--s0)}.s1{fill:var(--s1);background:var(--s1)}\
rect.alert,.key.alert{fill:var(--alert);background:var(--alert)}\
.p0{fill:#4e79a7;background:#4e79a7}.p1{fill:#f28e2b;background:#f28e2b}.p2{fill:#59a14f;background:#59a14f}\
.p3{fill:#b07aa1;background:#b07aa1}.p4{fill:#76b7b2;background:#76b7b2}.p5{fill:#edc948;background:#edc948}\
text{font-size:11px;fill:var(--ink)}text.label{text-anchor:end;dominant-baseline:middle}\
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9rem;min-width:100%}\
th,td{padding:.25rem .6rem;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{cursor:pointer;background:#f6f6f6;position:sticky;top:0}\
tr.alert td{color:var(--alert)}\
@media print{th{position:static}main{max-width:none}}";

/// Sorts a table by the column whose header is clicked (numbers by value).
const SCRIPT: &str = "\
document.querySelectorAll('table.sortable th').forEach(function(th,i){th.addEventListener('click',function(){\
var body=th.closest('table').tBodies[0],rows=Array.prototype.slice.call(body.rows),up=th.dataset.dir!=='up';\
rows.sort(function(x,y){var a=x.cells[i],b=y.cells[i],d;\
if(a.dataset.v!==undefined&&b.dataset.v!==undefined){d=parseFloat(a.dataset.v)-parseFloat(b.dataset.v);}\
else{d=a.textContent.localeCompare(b.textContent);}return up?d:-d;});\
th.dataset.dir=up?'up':'down';rows.forEach(function(r){body.appendChild(r);});});});";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(strata: Vec<Value>, splits: Value, names: &[&str]) -> Value {
        json!({
            "strat_version": "0.1.0", "rule_file": "a<b>.strat", "rule_md5": "00",
            "inputs": [], "output": null, "statement": "cohort", "seed": 7,
            "population": 300, "selected": 30, "null_units": 0, "excluded_units": 0,
            "having_dropped_units": 0, "warnings": ["w </script>"], "splits": splits,
            "split_names": names,
            "strata": strata, "upstream": [],
        })
    }

    #[test]
    fn the_page_embeds_the_json_it_was_drawn_from() {
        let strata = (0..40)
            .map(|i| {
                json!({"stratum": format!("c{i}/x"), "values": [format!("c{i}"), "x"],
                "population": 10 + i, "n_h": 2, "p_h": null, "selected": if i == 3 { 1 } else { 2 },
                "weight": 5.0})
            })
            .collect();
        let r = report(strata, json!({}), &[]);
        let page = to_html(&r);
        assert_eq!(embedded_report(&page).as_ref(), Some(&r));
        // 40 first values: 15 shown and the rest folded, two bars each, in
        // two charts; 15 weights.
        assert_eq!(page.matches("class=\"bar ").count(), 16 * 2 * 2 + 15);
        assert_eq!(page.matches("<tr class=\"alert\">").count(), 1);
        assert!(page.contains("a&lt;b&gt;.strat"));
        assert!(!page.contains("w </script>"));
    }

    #[test]
    fn a_split_shows_each_part_share() {
        let strata = (0..3)
            .map(|i| {
                json!({"stratum": format!("s{i}"), "values": [format!("s{i}")],
                "population": 100, "n_h": 100, "p_h": null, "selected": 100, "weight": null,
                "splits": {"train": 80, "test": 20}})
            })
            .collect();
        let page = to_html(&report(
            strata,
            json!({"test": 60, "train": 240}),
            &["train", "test"],
        ));
        // "all" and three strata, two parts each.
        assert_eq!(page.matches("class=\"bar p").count(), 4 * 2);
        assert!(page.contains("<th>train</th><th>test</th>"));
    }
}
