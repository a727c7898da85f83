//! The ledger scripts in `lua/`, compiled into the binary. Each is `lib.lua` followed by the
//! operation's file, so one text (and one SHA) per operation. `load` sends every script at
//! start — a syntax error fails the boot — and calls go by SHA, reloading on NOSCRIPT.

use super::RedisStore;
use crate::store::StoreResult;

/// One compiled ledger script, called by SHA through [`RedisStore::eval`]. Wraps the driver's
/// handle so the ledger names a script without naming a driver type.
pub struct Script(redis::Script);

impl Script {
    fn new(text: &str) -> Self {
        Self(redis::Script::new(text))
    }

    pub(super) fn driver(&self) -> &redis::Script {
        &self.0
    }
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
                let texts = vec![$(format!("{LIB}\n{}", include_str!(concat!("../../../lua/", $file)))),+];
                let mut it = texts.iter();
                Self {
                    $($name: Script::new(it.next().map(String::as_str).unwrap_or_default()),)+
                    texts: texts.clone(),
                }
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
    budget_import => "budget_import.lua",
    budget_restore => "budget_restore.lua",
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
