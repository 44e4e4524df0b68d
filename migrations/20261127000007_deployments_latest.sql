-- The newest deployment of a service in an environment is read for every row of a service list:
-- one index probe per environment instead of sorting the service's whole history.
CREATE INDEX deployments_latest ON deployments (service_id, environment_id, id DESC);
