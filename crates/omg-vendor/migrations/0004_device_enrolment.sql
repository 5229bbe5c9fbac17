-- omg-vendor schema, version 4: explicit device enrolment.
--
-- A device gets keys only once the vendor enrolled it (`omg vendor enroll`,
-- `POST /v1/devices/enroll`): `enrolled_at` is the time of its enrolment, NULL for a device
-- never enrolled. Devices recorded on first use by earlier versions are not enrolled by this
-- migration: they were never vetted, so the operator enrols the ones it knows. Portable SQL.

ALTER TABLE devices ADD COLUMN enrolled_at BIGINT;
