//! A scripted `AdminView`: tests set its rows and read back which actions ran.

use orochi_admin::*;
use orochi_config::{ConfigError, ConfigErrors, Location};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

#[derive(Default)]
pub struct FakeView {
    pub pools: Mutex<Vec<PoolRow>>,
    pub clients: Mutex<Vec<ClientRow>>,
    pub transactions: Mutex<Vec<TransactionRow>>,
    pub nodes: Mutex<Vec<PoolNodeRow>>,
    pub unhealthy: AtomicBool,
    pub bad_config: AtomicBool,
    /// When set, PAUSE waits for `pause_gate` to be notified.
    pub hold_pause: AtomicBool,
    pub pause_gate: Notify,
    pub actions: Mutex<Vec<String>>,
}

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn pool(db: &str, user: &str, shard: usize, waiting: u32, active: u32, idle: u32) -> PoolRow {
    PoolRow {
        database: db.into(),
        user: user.into(),
        cl_active: 1,
        cl_waiting: waiting,
        sv_active: active,
        sv_idle: idle,
        maxwait: Duration::from_micros(2_500_123),
        pool_mode: "transaction".into(),
        shard,
        role: Some(Role::Primary),
        pool_size: 10,
        ..Default::default()
    }
}

pub fn client(id: u64, db: &str, user: &str, state: ClientState) -> ClientRow {
    ClientRow {
        id,
        user: user.into(),
        database: db.into(),
        state,
        addr: "127.0.0.1".into(),
        port: 40000 + id as u16,
        local_addr: "127.0.0.1".into(),
        local_port: 5432,
        connect_time: at(1_709_251_199),
        request_time: at(1_709_251_200),
        wait: Duration::ZERO,
        close_needed: false,
        link: Some(7),
        tls: None,
        application_name: "psql".into(),
        in_transaction: false,
    }
}

pub fn node(db: &str, shard: usize, port: u16, status: NodeStatus) -> PoolNodeRow {
    PoolNodeRow {
        node_id: shard,
        host: "10.0.0.1".into(),
        port,
        status,
        weight: 1,
        role: Role::Primary,
        select_cnt: 3,
        load_balance_node: true,
        replication_delay: None,
        last_status_change: at(0),
        database: db.into(),
        shard,
    }
}

impl FakeView {
    pub fn new() -> Arc<Self> {
        Arc::new(FakeView::default())
    }
    fn log(&self, s: String) {
        self.actions.lock().unwrap().push(s);
    }
    pub fn actions(&self) -> Vec<String> {
        self.actions.lock().unwrap().clone()
    }
}

impl AdminView for FakeView {
    fn pools(&self) -> Vec<PoolRow> {
        self.pools.lock().unwrap().clone()
    }
    fn clients(&self) -> Vec<ClientRow> {
        self.clients.lock().unwrap().clone()
    }
    fn servers(&self) -> Vec<ServerRow> {
        vec![ServerRow {
            id: 7,
            user: "app".into(),
            database: "app".into(),
            state: ServerState::Active,
            addr: "10.0.0.1".into(),
            port: 5432,
            local_addr: "10.0.0.9".into(),
            local_port: 50000,
            connect_time: at(0),
            request_time: at(60),
            wait: Duration::ZERO,
            close_needed: false,
            link: Some(1),
            remote_pid: 4242,
            tls: Some("TLSv1.3".into()),
            application_name: String::new(),
            shard: 1,
            role: Role::Replica,
            health: NodeStatus::Banned,
            replication_delay: Some(Duration::from_millis(1500)),
        }]
    }
    fn stats(&self) -> Vec<StatsRow> {
        vec![StatsRow {
            database: "app".into(),
            total_query_count: 12_345_678_901,
            ..Default::default()
        }]
    }
    fn databases(&self) -> Vec<DatabaseRow> {
        let mut names: Vec<String> = self.pools().into_iter().map(|p| p.database).collect();
        names.dedup();
        names
            .into_iter()
            .map(|name| DatabaseRow {
                name: name.clone(),
                host: "10.0.0.1".into(),
                port: 5432,
                database: format!("{name}_s0"),
                pool_size: 10,
                pool_mode: "transaction".into(),
                ..Default::default()
            })
            .collect()
    }
    fn config(&self) -> Vec<ConfigRow> {
        vec![ConfigRow {
            key: "ban_time".into(),
            value: "60".into(),
            default: "60".into(),
            changeable: true,
        }]
    }
    fn shards(&self) -> Vec<ShardRow> {
        vec![ShardRow {
            database: "app".into(),
            shard: 0,
            server_database: "app_s0".into(),
            primary: Some("10.0.0.1:5432".into()),
            replicas: vec!["10.0.0.2:5432".into(), "10.0.0.3:5432".into()],
            servers_up: 3,
            sharded_tables: vec!["accounts".into()],
        }]
    }
    fn transactions(&self) -> Vec<TransactionRow> {
        self.transactions.lock().unwrap().clone()
    }
    fn pool_nodes(&self) -> Vec<PoolNodeRow> {
        self.nodes.lock().unwrap().clone()
    }
    fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::SeqCst)
    }
    fn ready(&self) -> bool {
        self.healthy()
    }
    fn reload(&self) -> BoxFuture<'_, Result<String, AdminError>> {
        Box::pin(async move {
            self.log("reload".into());
            if self.bad_config.load(Ordering::SeqCst) {
                return Err(AdminError::Config(ConfigErrors(vec![
                    ConfigError::Invalid {
                        location: Location::File {
                            file: "orochi.toml".into(),
                            line: 3,
                            column: 1,
                        },
                        message: "unknown key `pool_sise`".into(),
                    },
                ])));
            }
            Ok("pools changed: app".into())
        })
    }
    fn pause(&self, database: Option<String>) -> BoxFuture<'_, Result<(), AdminError>> {
        Box::pin(async move {
            if database.as_deref() == Some("nope") {
                return Err(AdminError::NoSuchDatabase("nope".into()));
            }
            if self.hold_pause.load(Ordering::SeqCst) {
                self.pause_gate.notified().await;
            }
            self.log(format!("pause {database:?}"));
            Ok(())
        })
    }
    fn resume(&self, database: Option<String>) -> Result<(), AdminError> {
        self.log(format!("resume {database:?}"));
        Ok(())
    }
    fn reconnect(&self, database: Option<String>) -> Result<(), AdminError> {
        self.log(format!("reconnect {database:?}"));
        Ok(())
    }
    fn kill_client(&self, id: u64) -> bool {
        let mut clients = self.clients.lock().unwrap();
        let before = clients.len();
        clients.retain(|c| c.id != id);
        before != clients.len()
    }
    fn shutdown(&self) {
        self.log("shutdown".into());
    }
}
