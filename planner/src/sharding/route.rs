//! The planner's answer for one statement on a sharded pool: which shards (decided by key
//! values, possibly bind parameters known only at Bind), whether it writes, and how the
//! results of several shards merge into one answer.

use crate::codec::cast::CastTo;
use orochi_config::KeyType;

/// One value a key column is constrained to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValue {
    Null,
    /// A literal, as SQL text (`42`, `'abc'`).
    Text(String),
    /// Bind parameter `$n` (1-based).
    Param(usize),
    /// `= ANY($n)`: every element of an array parameter.
    ParamArray(usize),
}

/// The key of one group of co-located tables is one of `values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySet {
    pub ty: KeyType,
    pub values: Vec<KeyValue>,
}

/// Where a statement goes, before parameters are known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// Touches no distributed table: any one shard answers (replicated tables, `SELECT 1`).
    Any,
    /// The shards holding these keys.
    Keys(KeySet),
    /// Several groups of distributed tables that are not joined on their keys: allowed
    /// only when every group's keys land on one and the same shard.
    SameShard(Vec<KeySet>),
    /// Every shard.
    All,
}

/// What the statement does, for the write rules (multi-shard writes need 2PC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Write,
    /// DDL and maintenance: every shard.
    Ddl,
    /// Transaction control and session commands the session handles itself.
    Session,
}

/// A column of the shard result rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// The n-th column (0-based).
    At(usize),
    /// The n-th hidden column appended by the router (counted from the first hidden one).
    Hidden(usize),
}

/// How a sorted output column compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub col: Col,
    pub desc: bool,
    pub nulls_first: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggKind {
    Count,
    Sum,
    Min,
    Max,
    /// `bit_and` / `bit_or` of integers: the shards' answers combined bitwise.
    BitAnd,
    BitOr,
    /// `avg(x)`, sent as `sum(x)` in this column and `count(x)` in `count_column`.
    Avg {
        count: Col,
    },
}

/// LIMIT / OFFSET given as a constant or a bind parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Const(u64),
    Param(usize),
}

/// How shard results combine into the answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merge {
    pub order: Vec<SortKey>,
    pub limit: Option<Count>,
    pub offset: Option<Count>,
    pub distinct: bool,
    /// Aggregation: group-key columns and aggregate columns; `None` = rows pass as they are.
    pub group: Option<Grouping>,
    /// Trailing columns added for sorting/grouping (or `avg`'s count) that the client
    /// must not see.
    pub hidden: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    pub keys: Vec<Col>,
    pub aggs: Vec<(Col, AggKind)>,
    /// Casts over aggregates (`count(*)::int`), innermost first, applied after merging.
    pub casts: Vec<(Col, Vec<CastTo>)>,
}

/// The data format of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
    Binary,
}

/// COPY ... FROM STDIN on several shards: the options the router needs to find row
/// boundaries and the key field (PostgreSQL's defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyIn {
    pub format: CopyFormat,
    pub delimiter: u8,
    pub quote: u8,
    pub escape: u8,
    /// The NULL marker (`\N` in text, the empty string in CSV).
    pub null: Vec<u8>,
    /// The first line is a header (every shard gets it; HEADER MATCH checks it there).
    pub header: bool,
    /// Where each row goes; `None` = every shard (a replicated table).
    pub key: Option<CopyKey>,
}

/// The shard key field of the rows of a COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyKey {
    pub ty: KeyType,
    /// The key column's name (FORCE_NULL and FORCE_NOT_NULL name columns).
    pub column: String,
    pub at: KeyAt,
    /// CSV `FORCE_NULL` names the key: a quoted NULL marker is NULL too.
    pub force_null: bool,
    /// CSV `FORCE_NOT_NULL` names the key: the NULL marker is a value.
    pub force_not_null: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAt {
    /// The n-th field (0-based) of each row: the COPY has a column list.
    Field(usize),
    /// No column list: the key column's place among the table's columns, which the
    /// executor reads from the catalog (`table`: the quoted, possibly qualified name).
    Column { table: String },
}

/// The plan of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    pub kind: Kind,
    pub routing: Routing,
    /// How to merge a fan-out; `Err` says why this statement cannot be answered across
    /// shards (turned into `0A000` only if it really needs several shards).
    pub merge: Result<Merge, String>,
    /// SQL to send to each shard on a fan-out (LIMIT push-down, `avg` rewrite, hidden
    /// columns); `None` = the original text.
    pub fanout_sql: Option<String>,
    /// Multi-row INSERT: the key of each VALUES row, for splitting per shard.
    pub insert_rows: Option<Vec<KeyValue>>,
    /// An INSERT without a column list: the table (quoted, possibly qualified) whose
    /// column order the executor must read before planning it again with
    /// `plan_with_columns`.
    pub needs_columns: Option<String>,
    /// That INSERT's implicit column list (the table's columns in order): a split INSERT
    /// names them, so a stale order fails on the shard instead of misplacing a row.
    pub insert_columns: Option<Vec<String>>,
    /// A statement that cannot be routed at all (`Err` = 0A000 message).
    pub refuse: Option<String>,
    /// COPY ... FROM STDIN: how the router splits the client's rows over the shards.
    pub copy_in: Option<CopyIn>,
    /// Writes a replicated table: every shard runs it, and one shard's answer (rows,
    /// command tag) is the client's, since every copy is the same.
    pub replicated: bool,
}

impl ShardPlan {
    pub fn simple(kind: Kind, routing: Routing) -> Self {
        ShardPlan {
            kind,
            routing,
            merge: Ok(Merge::default()),
            fanout_sql: None,
            insert_rows: None,
            needs_columns: None,
            insert_columns: None,
            refuse: None,
            copy_in: None,
            replicated: false,
        }
    }

    pub fn refused(msg: impl Into<String>) -> Self {
        let mut p = ShardPlan::simple(Kind::Read, Routing::All);
        p.refuse = Some(msg.into());
        p
    }
}
