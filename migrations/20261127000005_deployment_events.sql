-- Every change to a deployment, its steps or its analyses notifies `enclii_deployment_events` with
-- the deployment's id. Each server replica holds one listener and fans the ids out to the browsers
-- watching (server-sent events), so a live page costs no polling of the database.

CREATE FUNCTION enclii_notify_deployment() RETURNS trigger AS $$
BEGIN
    -- Separate branches: PL/pgSQL resolves NEW's fields only in the branch that runs.
    IF TG_TABLE_NAME = 'deployments' THEN
        PERFORM pg_notify('enclii_deployment_events', NEW.id::text);
    ELSE
        PERFORM pg_notify('enclii_deployment_events', NEW.deployment_id::text);
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER deployments_notify AFTER INSERT OR UPDATE ON deployments
    FOR EACH ROW EXECUTE FUNCTION enclii_notify_deployment();
CREATE TRIGGER deployment_steps_notify AFTER INSERT OR UPDATE ON deployment_steps
    FOR EACH ROW EXECUTE FUNCTION enclii_notify_deployment();
CREATE TRIGGER canary_analyses_notify AFTER INSERT ON canary_analyses
    FOR EACH ROW EXECUTE FUNCTION enclii_notify_deployment();
