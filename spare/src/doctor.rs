//! `spare doctor`'s printing: the node's checks (`node::doctor`), one line each with
//! its fix.

use node::doctor::Check;

/// The checks as text, one per line, with fixes under failures.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{} {:<18} {}\n",
            if c.ok { "PASS" } else { "FAIL" },
            c.name,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("     {:<18} fix: {fix}\n", ""));
        }
    }
    out
}
