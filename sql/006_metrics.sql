-- 006: counters for the operator's metrics (GET /metrics).
--
-- Counters that are events rather than states, kept in the database so
-- that every host reports the same figure.

CREATE TABLE metric_counters (
  name text PRIMARY KEY,
  value bigint NOT NULL DEFAULT 0
);
INSERT INTO metric_counters (name) VALUES ('lease_losses');

-- A lease loss: a turn claimed by another runner while a runner still
-- owned it, i.e. its lease expired (the runner died, stalled or lost the
-- database). A SIGTERM drain clears the owner before another runner
-- resumes the turn and is not counted; neither is a normal finish.
CREATE FUNCTION evr_count_lease_loss() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE metric_counters SET value = value + 1 WHERE name = 'lease_losses';
  RETURN NULL;
END $$;

CREATE TRIGGER turns_lease_loss AFTER UPDATE OF lease_owner ON turns
  FOR EACH ROW
  WHEN (OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NOT NULL
        AND OLD.lease_owner <> NEW.lease_owner)
  EXECUTE FUNCTION evr_count_lease_loss();
