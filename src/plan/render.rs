//! Rendering a Plan for people (text) and programs (JSON). Both come from the same value.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Action, Mode, Plan};

/// Values longer than this are cut in the text view (the JSON view has them whole).
const MAX_VALUE: usize = 160;

fn show(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > MAX_VALUE {
        let cut: String = s.chars().take(MAX_VALUE).collect();
        format!("{cut}… ({} chars)", s.chars().count())
    } else {
        s
    }
}

/// For two policy documents: the statements only one side has, as `- …` / `+ …` lines.
fn statement_diff(before: &Value, after: &Value) -> Option<Vec<String>> {
    let stmts = |v: &Value| -> Option<Vec<String>> {
        let s = v.get("Statement")?;
        let canon = crate::resources::normalize::canonical(s);
        Some(match canon {
            Value::Array(items) => items.iter().map(Value::to_string).collect(),
            one => vec![one.to_string()],
        })
    };
    let (b, a) = (stmts(before)?, stmts(after)?);
    let mut lines: Vec<String> = b.iter().filter(|x| !a.contains(x)).map(|x| format!("- {}", cut(x))).collect();
    lines.extend(a.iter().filter(|x| !b.contains(x)).map(|x| format!("+ {}", cut(x))));
    if lines.is_empty() {
        lines.push("(same statements; other fields differ)".into());
    }
    Some(lines)
}

fn cut(s: &str) -> String {
    if s.chars().count() > MAX_VALUE * 2 {
        format!("{}…", s.chars().take(MAX_VALUE * 2).collect::<String>())
    } else {
        s.to_string()
    }
}

pub fn text(plan: &Plan) -> String {
    let mut o = String::new();
    let verb = match plan.mode {
        Mode::Apply => "plan",
        Mode::Destroy => "destroy plan",
    };
    let _ = writeln!(o, "pipectl {verb} for stack {} in {} (account {})", plan.stack, plan.region, plan.account);
    for s in &plan.steps {
        let what = match s.action {
            Action::Create => "create".to_string(),
            Action::Update => "update in place".to_string(),
            Action::Adopt => "adopt (tag as this stack's) and update".to_string(),
            Action::Replace => {
                let forced: Vec<&str> =
                    s.changes.iter().filter(|c| c.forces_replace).map(|c| c.attr.as_str()).collect();
                format!("replace, forced by {}", forced.join(", "))
            }
            Action::Delete => "delete".to_string(),
        };
        let _ = writeln!(o, "\n  {} {}  ({what})", s.action.symbol(), s.id);
        if let Some(loss) = &s.data_loss {
            let _ = writeln!(o, "      ! loses: {loss}");
        }
        if let Some(n) = &s.note {
            let _ = writeln!(o, "      note: {n}");
        }
        if let Some(d) = &s.deployment {
            let what = if d.is_blue_green() {
                "a blue/green deployment: can take hours, and runs twice the nodes until it ends"
            } else if d.kind == "DynamicUpdate" {
                "a dynamic update: no blue/green deployment"
            } else {
                "AWS could not tell in advance"
            };
            let msg = if d.message.is_empty() { String::new() } else { format!(" ({})", d.message) };
            let _ = writeln!(o, "      deployment: {} - {what}{msg}", d.kind);
        }
        for c in &s.changes {
            let mark = if c.forces_replace { "   # forces replacement" } else { "" };
            if s.action == Action::Create {
                let _ = writeln!(o, "      {}: {}", c.attr, show(&c.after));
            } else if let Some(lines) = statement_diff(&c.before, &c.after) {
                let _ = writeln!(o, "      {}: policy statements{mark}", c.attr);
                for l in lines {
                    let _ = writeln!(o, "        {l}");
                }
            } else {
                let _ = writeln!(o, "      {}: {} -> {}{mark}", c.attr, show(&c.before), show(&c.after));
            }
        }
    }
    if !plan.conflicts.is_empty() {
        let _ = writeln!(o, "\nConflicts (apply refuses to make any change until they are resolved):");
        for c in &plan.conflicts {
            let _ = writeln!(o, "  ! {}", c.message);
        }
    }
    for id in &plan.left_alone {
        let _ = writeln!(o, "\n  = {id}  (not owned by stack {}: left alone)", plan.stack);
    }
    for k in &plan.kept {
        let _ = writeln!(o, "\n  = {}  (kept)\n      {}", k.id, k.message);
    }
    for w in &plan.warnings {
        let _ = writeln!(o, "\n  ? {}  (not seen)\n      {}", w.id, w.message);
    }
    if !plan.data_losing_deletes().is_empty() {
        let _ = writeln!(o, "\n  ! apply deletes data-holding resources only with --allow-delete");
    }
    let _ = writeln!(o);
    if plan.is_empty() {
        let _ = write!(o, "No changes.");
    } else {
        let c = plan.counts();
        let _ = write!(
            o,
            "Plan: {} to add, {} to change, {} to replace, {} to destroy.",
            c.add, c.change, c.replace, c.destroy
        );
    }
    o
}

pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("a plan serialises")
}
