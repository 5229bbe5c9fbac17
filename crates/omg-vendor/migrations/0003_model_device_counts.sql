-- omg-vendor schema, version 3: a per-model count of the distinct devices with an activation.
--
-- The device-limit check reads this row instead of counting the model's distinct devices in
-- `activations` (a scan that grows with every activation); the activation that adds a new
-- device to a model raises it in the same transaction. Portable SQL, as version 1.

CREATE TABLE model_device_counts (
    model_id TEXT   NOT NULL PRIMARY KEY REFERENCES models (model_id),
    devices  BIGINT NOT NULL CHECK (devices >= 0)
);

INSERT INTO model_device_counts (model_id, devices)
    SELECT model_id, COUNT(DISTINCT ueid) FROM activations GROUP BY model_id;
