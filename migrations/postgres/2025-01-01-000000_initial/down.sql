DROP TABLE delivery_attempts;
DROP TABLE tasks;
DROP TABLE invocations;
DROP TABLE webhooks;
DROP TABLE targets;
DROP TABLE api_keys;
DROP TABLE organizations;
