-- The SQL floor of one discovery flow's creation: the least SQL the three transactions that
-- create and link a flow need on the real schema (issue 9: "master + command; child + event +
-- inbox; apply + inbox"). One execution of this script is one flow, so pgbench's "tps" is
-- flows per second. `make bench` runs it with 8 clients on the benchmark's own database:
--
--   pgbench -n -c 8 -j 2 -T 10 -f bench/floor.sql <owner URL>
--
-- It runs as the database owner (the embedded server's `postgres`, a superuser), so the
-- row-level security policies are not evaluated here; the services run as `flowpair_app`,
-- which they bind. Each transaction still sets the tenant settings, as the services do,
-- because the tenant columns of the child tables default from them.
--
-- Left out, as not needed by the least implementation: pg_notify, the relay's own claim and
-- delivery marks on the outbox rows, the request-id and concurrent-flow lookups.

SELECT gen_random_uuid() AS flow, gen_random_uuid() AS child, gen_random_uuid() AS account,
       gen_random_uuid() AS engagement, gen_random_uuid() AS usr, gen_random_uuid() AS cmd,
       gen_random_uuid() AS evt \gset

-- 1. CreateFlow (orchestrator): the master flow, its phases and first history entry, and
--    the CreateChildFlow command in the outbox.
BEGIN;
SELECT set_config('flowpair.client_account_id', ':account', true),
       set_config('flowpair.engagement_id', ':engagement', true);
INSERT INTO orchestrator.flows
  (id, client_account_id, engagement_id, create_user, flow_type, auto_approve, import_id,
   status, current_phase, history_seq)
VALUES (':flow', ':account', ':engagement', ':usr', 1, false, ':usr', 1, 1, 1);
INSERT INTO orchestrator.flow_phases (flow_id, phase, status)
  SELECT ':flow', p, 1 FROM generate_series(1, 7) AS p;
INSERT INTO orchestrator.flow_events (flow_id, seq, kind, flow_status, occur_time)
VALUES (':flow', 1, 1, 1, now());
WITH s AS (
  INSERT INTO messaging.outbox_sequences AS q (source, ordering_key, last_seq)
  VALUES ('orchestrator', ':flow', 1)
  ON CONFLICT (source, ordering_key) DO UPDATE SET last_seq = q.last_seq + 1
  RETURNING last_seq
)
INSERT INTO messaging.outbox
  (message_id, source, destination, method, message_type, ordering_key, seq, payload, headers)
SELECT ':cmd', 'orchestrator', 'discovery',
       '/flowpair.internal.v1.ChildFlowService/CreateChildFlow',
       'flowpair.internal.v1.CreateChildFlowRequest', ':flow', s.last_seq,
       '\x0a2466'::bytea, '{}'::jsonb
FROM s;
COMMIT;

-- 2. CreateChildFlow (discovery): the inbox entry, the child flow and its phases, and the
--    INITIALIZATION event in the outbox.
BEGIN;
SELECT set_config('flowpair.client_account_id', ':account', true),
       set_config('flowpair.engagement_id', ':engagement', true);
INSERT INTO messaging.inbox (consumer, message_id) VALUES ('discovery', ':cmd')
  ON CONFLICT DO NOTHING;
INSERT INTO discovery.child_flows
  (id, master_flow_id, client_account_id, engagement_id, create_user, flow_type, import_id,
   status, event_seq)
VALUES (':child', ':flow', ':account', ':engagement', ':usr', 1, ':usr', 2, 1);
INSERT INTO discovery.child_phases (child_flow_id, phase, status)
  SELECT ':child', p, CASE WHEN p = 1 THEN 3 ELSE 1 END FROM generate_series(1, 7) AS p;
WITH s AS (
  INSERT INTO messaging.outbox_sequences AS q (source, ordering_key, last_seq)
  VALUES ('discovery', ':flow', 1)
  ON CONFLICT (source, ordering_key) DO UPDATE SET last_seq = q.last_seq + 1
  RETURNING last_seq
)
INSERT INTO messaging.outbox
  (message_id, source, destination, method, message_type, ordering_key, seq, payload, headers)
SELECT ':evt', 'discovery', 'orchestrator',
       '/flowpair.internal.v1.FlowEventService/RecordPhaseStatus',
       'flowpair.internal.v1.RecordPhaseStatusRequest', ':flow', s.last_seq,
       '\x0a2466'::bytea, '{}'::jsonb
FROM s;
COMMIT;

-- 3. RecordPhaseStatus (orchestrator): the inbox entry, the event applied to the locked
--    master flow (linked, INITIALIZATION completed) and its history entry.
BEGIN;
SELECT set_config('flowpair.client_account_id', ':account', true),
       set_config('flowpair.engagement_id', ':engagement', true);
INSERT INTO messaging.inbox (consumer, message_id) VALUES ('orchestrator', ':evt')
  ON CONFLICT DO NOTHING;
UPDATE orchestrator.flows
   SET child_flow_id = ':child', status = 2, last_event_seq = 1, history_seq = 2,
       update_time = now()
 WHERE id = ':flow';
UPDATE orchestrator.flow_phases SET status = 3, update_time = now()
 WHERE flow_id = ':flow' AND phase = 1;
INSERT INTO orchestrator.flow_events
  (flow_id, seq, kind, phase, phase_status, flow_status, source_sequence, occur_time)
VALUES (':flow', 2, 2, 1, 3, 2, 1, now());
COMMIT;
