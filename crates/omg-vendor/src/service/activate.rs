//! An activation: the stateless checks, the licence and key release prepared on a
//! snapshot, and the write transaction that decides.

use std::sync::Arc;

use omg_protocol::endorsement::Endorsement;
use omg_protocol::key_release::{HpkePublicKey, KeyRelease};
use omg_protocol::licence::Licence;
use omg_protocol::rand_core::CryptoRng;

use crate::device::DeviceKey;
use crate::records::sql_time;
use crate::sql::{Tx, args};
use crate::store::{self, Sequence};
use crate::store_error::StoreError;
use omg_protocol::hex;

use super::audit::{AuditSubject, write_audit, write_refusal_audit};
use super::checks::{Checked, Decision, Nonce, Prepared, Stop, Undo, check_in, token_refusal};
use super::{ActivateError, Activation, ActivationRequest, Inner, Refusal, Service};

/// How many times an activation is prepared again when the model's terms changed between its
/// preparation and its write transaction (each time, someone changed the policy or revoked a
/// version in between).
const MAX_PREPARE_ATTEMPTS: usize = 8;

/// An activation's write transaction: the checks, then (granted) the device, the activation
/// and the device count with the prepared licence and key release, or (refused) only the
/// consumed nonce; and its audit row either way. Rolled back if the prepared licence no longer
/// fits the model's terms.
fn decide(
    tx: &mut dyn Tx,
    inner: &Inner,
    c: &Checked,
    prepared: Option<Prepared>,
    now: u64,
) -> Result<Decision, Undo> {
    match grant(tx, inner, c, prepared, now) {
        Ok(activation) => {
            write_audit(tx, now, &c.subject, None)?;
            Ok(Decision::Activated(activation))
        }
        Err(Stop::Refuse(refusal)) => {
            // Commit the refusal's audit row (and the nonce, if check 4 consumed it).
            write_refusal_audit(tx, now, &c.subject, &refusal)?;
            Ok(Decision::Refused(refusal))
        }
        Err(Stop::Undo(undo)) => Err(undo),
    }
}

fn grant(
    tx: &mut dyn Tx,
    inner: &Inner,
    c: &Checked,
    prepared: Option<Prepared>,
    now: u64,
) -> Result<Activation, Stop> {
    let terms = check_in(tx, c, now, Nonce::Consume, inner)?;
    let activation = match prepared {
        Some(p) if p.policy == terms.model.policy && p.epoch == terms.model.revocation_epoch => {
            p.activation
        }
        _ => return Err(Stop::Undo(Undo::Stale)),
    };
    // Check 3 found the device enrolled (its row exists) or endorsed (recorded now, with its
    // maker).
    tx.execute(
        "INSERT INTO devices (ueid, public_key, first_seen, revoked, endorsed_by)
         VALUES (?1, ?2, ?3, 0, ?4)
         ON CONFLICT (ueid) DO UPDATE SET
             public_key = COALESCE(devices.public_key, excluded.public_key),
             first_seen = COALESCE(devices.first_seen, excluded.first_seen),
             endorsed_by = COALESCE(devices.endorsed_by, excluded.endorsed_by)",
        args![
            &c.ueid_hex,
            &c.device_key_hex,
            sql_time(now),
            terms.endorsed_by.as_deref()
        ],
    )?;
    let id = store::next_seq(tx, Sequence::Activations)?;
    tx.execute(
        "INSERT INTO activations (id, ueid, model_id, version, activated_at, licence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            id,
            &c.ueid_hex,
            &c.model_id,
            i64::from(c.version),
            sql_time(now),
            &hex::encode(&activation.licence)
        ],
    )?;
    if terms.new_device {
        tx.execute(
            "INSERT INTO model_device_counts (model_id, devices) VALUES (?1, 1)
             ON CONFLICT (model_id) DO UPDATE SET devices = model_device_counts.devices + 1",
            args![&c.model_id],
        )?;
    }
    Ok(activation)
}

impl Service {
    /// Activates a model on a device (see the module doc for the checks and their order).
    /// Returns only after the activation and its audit row are committed.
    pub fn activate<R: CryptoRng + ?Sized>(
        &self,
        request: &ActivationRequest,
        now: u64,
        rng: &mut R,
    ) -> Result<Activation, ActivateError> {
        let (checked, device_ueid, enclave_key) = match Self::check_request(request) {
            Ok(v) => v,
            Err((refusal, subject)) => {
                let audited = refusal.clone();
                self.inner
                    .store
                    .write_batched(move |tx| write_refusal_audit(tx, now, &subject, &audited))?;
                return Err(ActivateError::Refused(refusal));
            }
        };
        let checked = Arc::new(checked);
        for _ in 0..MAX_PREPARE_ATTEMPTS {
            let prepared = self.prepare(
                &checked,
                device_ueid,
                &enclave_key,
                &request.token,
                now,
                rng,
            )?;
            let job = Arc::clone(&checked);
            let inner = Arc::clone(&self.inner);
            match self
                .inner
                .store
                .write_batched(move |tx| decide(tx, &inner, &job, prepared, now))
            {
                Ok(Decision::Activated(activation)) => return Ok(activation),
                Ok(Decision::Refused(refusal)) => return Err(ActivateError::Refused(refusal)),
                Err(Undo::Stale) => {}
                Err(Undo::Store(e)) => return Err(ActivateError::Internal(e)),
            }
        }
        Err(ActivateError::Internal(StoreError::Busy(format!(
            "the model's terms changed during each of {MAX_PREPARE_ATTEMPTS} attempts to \
             activate it"
        ))))
    }

    /// The stateless checks 1 and 2 of the module documentation; a refusal comes with what its
    /// audit row records.
    #[allow(clippy::type_complexity)]
    fn check_request(
        request: &ActivationRequest,
    ) -> Result<(Checked, [u8; omg_protocol::keys::UEID_LEN], HpkePublicKey), (Refusal, AuditSubject)>
    {
        let device_key = DeviceKey::parse(&request.device_public_key);
        let subject = AuditSubject {
            ueid: device_key.as_ref().map(|k| hex::encode(&k.ueid())),
            model_id: request.model_id.clone(),
            version: request.version,
        };
        let pre = (|| {
            let device_key = device_key.ok_or(Refusal::MalformedRequest("device_public_key"))?;
            let enclave_key = HpkePublicKey::from_bytes(&request.enclave_public_key)
                .map_err(|_| Refusal::MalformedRequest("enclave_public_key"))?;
            store::check_model_id(&request.model_id)
                .map_err(|_| Refusal::MalformedRequest("model_id"))?;
            let endorsement = request
                .endorsement
                .as_ref()
                .map(|bytes| {
                    Endorsement::maker_key_id(bytes)
                        .map(|kid| (hex::encode(&kid), bytes.clone()))
                        .map_err(|_| Refusal::MalformedEndorsement)
                })
                .transpose()?;
            let claims = device_key
                .verify_token(&request.token)
                .map_err(|e| token_refusal(&e))?;
            Ok::<_, Refusal>((device_key, enclave_key, claims, endorsement))
        })();
        let (device_key, enclave_key, claims, endorsement) = match pre {
            Ok(v) => v,
            Err(refusal) => return Err((refusal, subject)),
        };
        let device_ueid = device_key.ueid();
        let ueid_hex = hex::encode(&device_ueid);
        let device_key_bytes = device_key.to_bytes();
        let checked = Checked {
            subject: AuditSubject {
                ueid: Some(ueid_hex.clone()),
                ..subject
            },
            claims,
            backend: device_key.backend(),
            ueid_hex,
            device_key_hex: hex::encode(&device_key_bytes),
            device_key: device_key_bytes,
            endorsement,
            model_id: request.model_id.clone(),
            version: request.version,
            enclave_public_key: request.enclave_public_key.clone(),
        };
        Ok((checked, device_ueid, enclave_key))
    }

    /// Signs the licence and seals the key release of an activation outside its write
    /// transaction, from a snapshot of the database; `None` if the snapshot already refuses
    /// the activation (then nothing is signed, and the write transaction refuses it, or finds
    /// that the database changed and asks for a new preparation).
    fn prepare<R: CryptoRng + ?Sized>(
        &self,
        checked: &Checked,
        device_ueid: [u8; omg_protocol::keys::UEID_LEN],
        enclave_key: &HpkePublicKey,
        token: &[u8],
        now: u64,
        rng: &mut R,
    ) -> Result<Option<Prepared>, StoreError> {
        let terms = match self
            .inner
            .store
            .read(|tx| Ok(check_in(tx, checked, now, Nonce::Check, &self.inner)))?
        {
            Ok(terms) => terms,
            Err(Stop::Refuse(_)) | Err(Stop::Undo(Undo::Stale)) => return Ok(None),
            Err(Stop::Undo(Undo::Store(e))) => return Err(e),
        };
        let policy = &terms.model.policy;
        let licence = Licence {
            device_ueid,
            model_id: checked.model_id.clone(),
            model_version: checked.version,
            not_after: policy.not_after,
            epoch: terms.model.revocation_epoch,
            quota: policy.inference_quota,
            output_policy: policy.output_policy.into(),
            input_sources: policy.input_source_set(),
            activation: omg_protocol::sha256(token),
            lease: policy.lease(now),
        }
        .sign(&self.inner.vendor_key)?;
        let key_release = KeyRelease::seal(
            enclave_key,
            token,
            &terms.content_key,
            &checked.model_id,
            checked.version,
            rng,
        )?;
        Ok(Some(Prepared {
            policy: terms.model.policy,
            epoch: terms.model.revocation_epoch,
            activation: Activation {
                key_release,
                licence,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use omg_protocol::ContentKey;
    use omg_protocol::key_release::HpkeKeyPair;
    use omg_protocol::token::{Claims, SoftwareComponent, Token};
    use omg_testkit::DeterministicRng;

    use crate::{Policy, Store};

    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn policy(not_after: u64) -> Policy {
        Policy::from_toml(&format!(
            "allowed_measurements = [\"{}\"]\nmax_devices = 5\nnot_after = {not_after}\n",
            "11".repeat(32)
        ))
        .unwrap()
    }

    /// A licence prepared under terms that change before the write transaction is not issued:
    /// the transaction rolls back (the nonce stays unused, no audit row), and `activate`
    /// prepares again under the new terms.
    #[test]
    fn a_licence_prepared_under_old_terms_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = DeterministicRng::new(5);
        let store = Store::open(dir.path().join("vendor.sqlite")).unwrap();
        store.put_model("m", &policy(NOW + 100), NOW).unwrap();
        store
            .add_model_version("m", 1, &ContentKey::generate(&mut rng), NOW)
            .unwrap();
        let vendor = omg_protocol::generate_signing_key(&mut rng);
        let service = Service::new(store, vendor.clone());

        let device = omg_protocol::generate_signing_key(&mut rng);
        let enclave = HpkeKeyPair::generate(&mut rng);
        service
            .enroll_device(&omg_protocol::public_key_sec1(device.verifying_key()), NOW)
            .unwrap();
        let challenge = service.issue_nonce(NOW, &mut rng).unwrap();
        let claims = Claims::new(
            device.verifying_key(),
            &challenge.nonce,
            [0x33; 32],
            vec![SoftwareComponent {
                measurement_type: None,
                measurement_value: vec![0x11; 32],
                version: None,
                signer_id: vec![0x22; 32],
                measurement_desc: None,
            }],
            enclave.public_key_hash(),
        );
        let request = ActivationRequest {
            token: Token::sign(&claims, &device).unwrap(),
            device_public_key: omg_protocol::public_key_sec1(device.verifying_key()).to_vec(),
            model_id: "m".into(),
            version: 1,
            enclave_public_key: enclave.public_key.to_bytes().to_vec(),
            endorsement: None,
        };

        let Ok((checked, device_ueid, enclave_key)) = Service::check_request(&request) else {
            panic!("the request is well-formed");
        };
        let checked = Arc::new(checked);
        let prepared = service
            .prepare(
                &checked,
                device_ueid,
                &enclave_key,
                &request.token,
                NOW,
                &mut rng,
            )
            .unwrap()
            .expect("prepared");
        // The terms change in between.
        service
            .store()
            .put_model("m", &policy(NOW + 200), NOW)
            .unwrap();
        let (job, inner) = (Arc::clone(&checked), Arc::clone(&service.inner));
        let stale = service
            .store()
            .write_batched(move |tx| decide(tx, &inner, &job, Some(prepared), NOW));
        assert!(matches!(stale, Err(Undo::Stale)));
        assert!(service.audit_log().unwrap().is_empty());
        assert!(service.list_activations().unwrap().is_empty());

        // The whole activation: prepared again, under the new terms.
        let activation = service.activate(&request, NOW, &mut rng).unwrap();
        let licence = Licence::verify(&activation.licence, vendor.verifying_key()).unwrap();
        assert_eq!(licence.not_after, NOW + 200);
        assert_eq!(service.audit_log().unwrap().len(), 1);
    }
}
