//! Conversions between the store's request, answer and error types and
//! their `clientpb` wire forms. Decoding is total: whatever a peer sends
//! becomes a value or an `InvalidRequest`, never a panic.

use flotilla_proto::clientpb::{
    self, GetRequest, GetResponse, KvPair, ScanRequest, ScanResponse, error::Kind,
    read_request::Req,
};
use flotilla_raftstore::{Error, ReadRequest, ReadResponse};

use crate::frame::{FrameDecoder, FrameKind};

/// Reads frames of `kind`, each a prost `M`, from a blocking `stream` and
/// hands each to `on`, until the stream ends (`Ok`) or carries anything
/// else (`Err`, with the reason).
pub(crate) fn read_messages<M: prost::Message + Default>(
    stream: &mut std::net::TcpStream,
    kind: FrameKind,
    frame_bytes_max: u64,
    mut on: impl FnMut(M),
) -> Result<(), String> {
    use std::io::Read as _;
    let mut decoder = FrameDecoder::new(frame_bytes_max);
    let mut scratch = vec![0u8; 64 << 10];
    loop {
        let n = match stream.read(&mut scratch) {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => n,
        };
        decoder.extend(&scratch[..n]);
        while let Some((k, payload)) = decoder.next_frame().map_err(|e| e.to_string())? {
            if k != kind {
                return Err(format!("a {k:?} frame where {kind:?} frames belong"));
            }
            on(M::decode(payload.as_slice()).map_err(|e| format!("{kind:?}: {e}"))?);
        }
    }
}

/// A store error as it travels.
pub(crate) fn error_to_wire(e: &Error) -> clientpb::Error {
    let kind = match e {
        Error::NotLeader { region_id, leader } => Kind::NotLeader(clientpb::NotLeader {
            region_id: *region_id,
            leader: *leader,
        }),
        Error::EpochNotMatch { region_id, current } => {
            Kind::EpochNotMatch(clientpb::EpochNotMatch {
                region_id: *region_id,
                current: Some((**current).clone()),
            })
        }
        Error::KeyNotInRegion { key, region } => Kind::KeyNotInRegion(clientpb::KeyNotInRegion {
            key: key.clone(),
            region: Some((**region).clone()),
        }),
        Error::RegionNotFound {
            region_id,
            store_id,
        } => Kind::RegionNotFound(clientpb::RegionNotFound {
            region_id: *region_id,
            store_id: *store_id,
        }),
        Error::StaleCommand => Kind::StaleCommand(true),
        Error::ServerIsBusy(why) => Kind::ServerIsBusy(why.clone()),
        Error::Timeout => Kind::Timeout(true),
        Error::StoreStopped(id) => Kind::StoreStopped(*id),
        Error::InvalidRequest(why) => Kind::InvalidRequest(why.clone()),
        Error::Engine(why) => Kind::Engine(why.clone()),
        other => Kind::Engine(other.to_string()),
    };
    clientpb::Error { kind: Some(kind) }
}

/// A store error from the wire.
pub(crate) fn error_from_wire(e: clientpb::Error) -> Error {
    match e.kind {
        Some(Kind::NotLeader(n)) => Error::NotLeader {
            region_id: n.region_id,
            leader: n.leader,
        },
        Some(Kind::EpochNotMatch(m)) => Error::EpochNotMatch {
            region_id: m.region_id,
            current: Box::new(m.current.unwrap_or_default()),
        },
        Some(Kind::KeyNotInRegion(k)) => Error::KeyNotInRegion {
            key: k.key,
            region: Box::new(k.region.unwrap_or_default()),
        },
        Some(Kind::RegionNotFound(r)) => Error::RegionNotFound {
            region_id: r.region_id,
            store_id: r.store_id,
        },
        Some(Kind::StaleCommand(_)) => Error::StaleCommand,
        Some(Kind::ServerIsBusy(why)) => Error::ServerIsBusy(why),
        Some(Kind::Timeout(_)) => Error::Timeout,
        Some(Kind::StoreStopped(id)) => Error::StoreStopped(id),
        Some(Kind::InvalidRequest(why)) => Error::InvalidRequest(why),
        Some(Kind::Engine(why)) => Error::Engine(why),
        None => Error::InvalidRequest("an error of a kind this client does not know".into()),
    }
}

/// A read as it travels.
pub(crate) fn read_to_wire(req: ReadRequest) -> Req {
    match req {
        ReadRequest::Get { key } => Req::Get(GetRequest { key }),
        ReadRequest::Scan { start, end, limit } => Req::Scan(ScanRequest {
            start,
            end,
            limit: limit as u64,
        }),
    }
}

/// A read from the wire.
pub(crate) fn read_from_wire(req: Option<Req>) -> Result<ReadRequest, Error> {
    match req {
        Some(Req::Get(g)) => Ok(ReadRequest::Get { key: g.key }),
        Some(Req::Scan(s)) => Ok(ReadRequest::Scan {
            start: s.start,
            end: s.end,
            limit: usize::try_from(s.limit).unwrap_or(usize::MAX),
        }),
        None => Err(Error::InvalidRequest("a read without a request".into())),
    }
}

/// A read's answer as it travels.
pub(crate) fn answer_to_wire(resp: ReadResponse) -> clientpb::response::Result {
    use clientpb::response::Result as R;
    match resp {
        ReadResponse::Value(v) => R::Get(GetResponse {
            found: v.is_some(),
            value: v.unwrap_or_default(),
        }),
        ReadResponse::Pairs { pairs, region_end } => R::Scan(ScanResponse {
            pairs: pairs
                .into_iter()
                .map(|(key, value)| KvPair { key, value })
                .collect(),
            region_end,
        }),
    }
}
