// The JSON the desk's API serves (docs: the desk API contract). Times are ISO-8601 strings in UTC
// with an offset, or null; money and amounts are decimal strings, never numbers.

export type Time = string | null;

export interface StateRecord {
  state: string;
  known: boolean;
  reason: string;
  changed_by: string;
  changed_at: Time;
}

export interface StateBody {
  state: StateRecord;
  history: StateRecord[];
}

export interface Breaker {
  state: string;
  consecutive_failures: number;
  opened_until: Time;
  last_error: string | null;
}

export interface Balance {
  asset: string;
  free: string;
  used: string;
  total: string;
}

export interface Position {
  symbol: string;
  side: string;
  size: string;
  entry_price: string;
  mark_price: string;
  unrealized_pnl: string;
}

export interface Exposure {
  asset: string;
  quote: string;
  spot: string;
  perp: string;
  net: string;
  flat?: boolean;
}

export interface OpenOrder {
  client_order_id: string;
  symbol: string;
  side: string;
  type: string;
  amount: string;
  price: string | null;
  filled: string;
  status: string;
  created_at: Time;
}

export interface Pnl {
  currency: string;
  realized: string | null;
  unrealized: string | null;
}

export interface Venue {
  venue: string;
  kind: string;
  reachable: boolean;
  error: string | null;
  checked_at: Time;
  latency_ms: number | null;
  breaker: Breaker;
  balances: Balance[];
  positions: Position[];
  exposure: Exposure[];
  open_orders: OpenOrder[];
  pnl: Pnl | null;
}

export interface VenuesBody {
  generated_at: Time;
  venues: Venue[];
}

export interface StopVenue {
  venue: string;
  flat: boolean;
  status: string;
  rounds: number;
  orders_canceled: number;
  positions_closed: number;
  open_positions: number;
  open_orders: number;
  exposures: Exposure[];
  pending_open: string[];
  unsellable: string[];
  error: string | null;
}

export interface StopReport {
  event_id: string;
  dag_id: string;
  run_id: string;
  stage: string;
  at: Time;
  all_flat: boolean;
  trading_state: string;
  trigger_event_ids: string[];
  venues: StopVenue[];
  net_exposure: Exposure[];
}

export interface StopsBody {
  reports: StopReport[];
}

export interface DeadLetter {
  id: number;
  at: Time;
  topic: string;
  partition: number;
  offset: number;
  field: string;
  reason: string;
  watcher: string;
  status: string;
  event_id: string | null;
  dlq_partition: number | null;
  dlq_offset: number | null;
}

export interface DeadLettersBody {
  total: number;
  matching: number;
  topics: string[];
  items: DeadLetter[];
}

export interface Watcher {
  watcher: string;
  topic: string;
  group_id: string;
  process: string;
  started_at: Time;
  heartbeat_at: Time;
  alive: boolean;
  last_message_at: Time;
  lag: number | null;
  broker_state: string;
  broker_down_since: Time;
  messages: number;
  fired: number;
  dead_lettered: number;
  stale: number;
  conflicts: number;
  last_error: string | null;
}

export interface WatchersBody {
  broker: { bootstrap: string; up: boolean; error: string | null; checked_at: Time };
  stale_after_seconds: number;
  watchers: Watcher[];
}

export interface ModelRoute {
  venue: string;
  symbol: string;
  version: string;
  role: string;
  updated_at: Time;
  updated_by: string;
  reason: string;
}

export interface ModelChange {
  at: Time;
  kind: string;
  what: string;
  actor: string;
  reason: string;
}

export interface Canary {
  version: string;
  stage: string | null;
  canary_instruments: number;
  instruments: number;
  dag_run_id: string | null;
  started_at: Time;
}

export interface ModelsBody {
  available: boolean;
  error: string | null;
  model: string;
  aliases: Record<string, string>;
  routes: ModelRoute[];
  canary: Canary | null;
  changes: ModelChange[];
}

export interface AgentDecision {
  run_id: string;
  at: Time;
  decision: string;
  outcome: string;
  score: string | number | null;
  price: string | null;
  rationale: string;
  verdict: string;
  rejected_by: string | null;
}

export interface Agent {
  agent: string;
  dag_id: string;
  venue: string;
  symbol: string;
  schedule: string;
  timezone: string;
  runs: number;
  position: string;
  equity: string | null;
  pnl: string | null;
  max_drawdown: string | null;
  hit_rate: string | null;
  last: AgentDecision | null;
}

export interface AgentsBody {
  agents: Agent[];
  error: string | null;
}

export type SagaStatus = "ok" | "in_progress" | "compensated" | "needs_human" | "failed" | string;

export interface SagaRun {
  dag_id: string;
  run_id: string;
  first_at: Time;
  last_at: Time;
  steps_succeeded: number;
  steps_failed: number;
  undone: number;
  undo_failed: number;
  status: SagaStatus;
}

export interface SagasBody {
  runs: SagaRun[];
}

export interface SagaUndo {
  outcome: string;
  at: Time;
  idempotency_key: string | null;
  verified: string | null;
  detail: unknown;
}

export interface SagaStep {
  step: string;
  task_id: string;
  map_index: number;
  venue: string | null;
  idempotency_key: string;
  outcome: string;
  at: Time;
  amounts: Record<string, string>;
  detail: unknown;
  undo: SagaUndo | null;
}

export interface LedgerEntry {
  id: number;
  task_id: string;
  map_index: number;
  step: string;
  kind: string;
  outcome: string;
  idempotency_key: string;
  detail: unknown;
  at: Time;
}

export interface SagaBody {
  dag_id: string;
  run_id: string;
  status: SagaStatus;
  needs_human: string[];
  first_at: Time;
  last_at: Time;
  steps: SagaStep[];
  entries: LedgerEntry[];
}

export interface HaltResponse {
  state: StateRecord;
}

export interface RequestResponse {
  dag_id: string;
  run_id: string;
  url: string;
}

/** The props Airflow passes to every react_app component (strings or undefined). */
export interface HostProps {
  dagId?: string;
  runId?: string;
  taskId?: string;
  mapIndex?: string;
}
