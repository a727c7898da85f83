//! The ledger scripts in `lua/`, compiled into the binary. Each is `lib.lua` followed by the
//! operation's file, so one text (and one SHA) per operation. `load` sends every script at
//! start — a syntax error fails the boot — and calls go by SHA, reloading on NOSCRIPT.

use super::RedisStore;
use crate::store::StoreResult;

/// One compiled ledger script, called by SHA through [`RedisStore::eval`]. Wraps the driver's
/// handle so the ledger names a script without naming a driver type.
pub struct Script {
    script: redis::Script,
    /// The operation's name in the group-commit script, when it can be grouped.
    grouped_as: Option<&'static str>,
}

impl Script {
    fn new(text: &str, grouped_as: Option<&'static str>) -> Self {
        Self { script: redis::Script::new(text), grouped_as }
    }

    pub(super) fn driver(&self) -> &redis::Script {
        &self.script
    }

    /// The name under which the group-commit script runs this operation, if it does.
    pub fn grouped_as(&self) -> Option<&'static str> {
        self.grouped_as
    }
}

/// The runtime operations group commit may send together (`lua/batch.lua`).
const GROUPED: &[(&str, &str)] = &[
    ("reserve", include_str!("../../../lua/reserve.lua")),
    ("commit", include_str!("../../../lua/commit.lua")),
    ("release", include_str!("../../../lua/release.lua")),
    ("extend", include_str!("../../../lua/extend.lua")),
    ("event", include_str!("../../../lua/event.lua")),
];

/// `lib.lua`, each grouped operation as `OPS[<name>] = function(KEYS, ARGV) … end`, then
/// `batch.lua`: one script that runs any sequence of them.
pub(super) fn batch_text() -> String {
    let mut text = format!("{LIB}\nlocal OPS = {{}}\n");
    for (name, body) in GROUPED {
        text.push_str(&format!("OPS['{name}'] = function(KEYS, ARGV)\n{body}\nend\n"));
    }
    text.push_str(include_str!("../../../lua/batch.lua"));
    text
}

fn grouped_name(file: &str) -> Option<&'static str> {
    GROUPED.iter().map(|(name, _)| *name).find(|name| file.strip_suffix(".lua") == Some(*name))
}

const LIB: &str = include_str!("../../../lua/lib.lua");

macro_rules! scripts {
    ($($name:ident => $file:literal),+ $(,)?) => {
        /// One compiled script per ledger operation.
        pub struct Scripts {
            $(pub $name: Script,)+
            /// Every script's full text, for loading.
            texts: Vec<String>,
        }

        impl Scripts {
            pub fn new() -> Self {
                let mut texts = vec![$(format!("{LIB}\n{}", include_str!(concat!("../../../lua/", $file)))),+];
                let mut it = texts.iter();
                let scripts = Self {
                    $($name: Script::new(it.next().map(String::as_str).unwrap_or_default(), grouped_name($file)),)+
                    texts: Vec::new(),
                };
                // Loaded with the others, so a syntax error in it fails the boot too.
                texts.push(batch_text());
                Self { texts, ..scripts }
            }
        }
    };
}

scripts! {
    reserve => "reserve.lua",
    commit => "commit.lua",
    release => "release.lua",
    extend => "extend.lua",
    event => "event.lua",
    expire => "expire.lua",
    cascade => "cascade.lua",
    budget_create => "budget_create.lua",
    budget_update => "budget_update.lua",
    budget_status => "budget_status.lua",
    budget_fund => "budget_fund.lua",
    signals => "signals.lua",
    budget_import => "budget_import.lua",
    budget_restore => "budget_restore.lua",
    budget_read => "budget_read.lua",
    policy_publish => "policy_publish.lua",
    quota_read => "quota_read.lua",
    quota_reset => "quota_reset.lua",
}

impl Default for Scripts {
    fn default() -> Self {
        Self::new()
    }
}

impl Scripts {
    /// Loads every script (on every primary of a cluster); fails on the first that does not
    /// compile.
    pub async fn load(&self, redis: &RedisStore) -> StoreResult<()> {
        for text in &self.texts {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(text);
            let _: redis::Value = redis.query(&cmd).await?;
        }
        Ok(())
    }
}
