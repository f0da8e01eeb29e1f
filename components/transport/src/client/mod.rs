//! Clients over the network: the store's [`ClientService`] and the
//! client's [`RemoteStores`], speaking `clientpb` in the transport's
//! frames (kinds `ClientRequest` and `ClientResponse`).

mod remote;
mod server;
mod wire;

pub use remote::{RemoteConfig, RemoteStore, RemoteStores};
pub use server::{ClientService, ClientServiceConfig, ClientServiceStats};

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write as _;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use flotilla_proto::cmdpb::write_request::Cmd as WCmd;
    use flotilla_proto::cmdpb::{CommandHeader, PutRequest, WriteCommand, WriteRequest};
    use flotilla_proto::metapb::{Peer, Region, RegionEpoch};
    use flotilla_raftstore::{Callback, Error, ReadRequest, ReadResponse, StoreHandle};
    use parking_lot::Mutex;

    use super::*;

    /// A store that keeps a map and refuses the key "elsewhere" as led by
    /// store 3.
    #[derive(Debug, Default)]
    struct MapStore {
        data: Mutex<BTreeMap<Bytes, Bytes>>,
    }

    impl StoreHandle for MapStore {
        fn store_id(&self) -> u64 {
            7
        }
        fn write(&self, cmd: WriteCommand, cb: Callback<()>) {
            for r in cmd.requests {
                if let Some(WCmd::Put(p)) = r.cmd {
                    if p.key.as_ref() == b"elsewhere" {
                        return cb(Err(Error::NotLeader {
                            region_id: 1,
                            leader: Some(Peer {
                                id: 2,
                                store_id: 3,
                                ..Default::default()
                            }),
                        }));
                    }
                    self.data.lock().insert(p.key, p.value);
                }
            }
            cb(Ok(()));
        }
        fn read(&self, _: u64, _: RegionEpoch, req: ReadRequest, cb: Callback<ReadResponse>) {
            let data = self.data.lock();
            cb(Ok(match req {
                ReadRequest::Get { key } => ReadResponse::Value(data.get(&key).cloned()),
                ReadRequest::Scan { start, limit, .. } => ReadResponse::Pairs {
                    pairs: data
                        .range(start..)
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    region_end: Bytes::new(),
                },
            }));
        }
        fn regions(&self) -> Vec<Region> {
            vec![Region {
                id: 1,
                ..Default::default()
            }]
        }
    }

    fn put(key: &str, value: &str) -> WriteCommand {
        WriteCommand {
            header: Some(CommandHeader {
                region_id: 1,
                region_epoch: None,
            }),
            requests: vec![WriteRequest {
                cmd: Some(WCmd::Put(PutRequest {
                    key: Bytes::copy_from_slice(key.as_bytes()),
                    value: Bytes::copy_from_slice(value.as_bytes()),
                })),
            }],
        }
    }

    fn wait<T: Send + 'static>(f: impl FnOnce(Callback<T>)) -> Result<T, Error> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        f(Box::new(move |r| {
            let _ = tx.send(r);
        }));
        rx.recv_timeout(Duration::from_secs(10)).expect("an answer")
    }

    fn service() -> ClientService {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        ClientService::start(
            l,
            Arc::new(MapStore::default()),
            ClientServiceConfig::default(),
        )
        .unwrap()
    }

    #[test]
    fn requests_answers_and_typed_errors_cross_the_network() {
        let svc = service();
        let remote = RemoteStore::connect(svc.local_addr(), RemoteConfig::default()).unwrap();
        assert_eq!(remote.store_id(), 7, "learned from the store");
        assert_eq!(remote.regions().len(), 1);
        wait(|cb| remote.write(put("a", "1"), cb)).unwrap();
        let got = wait(|cb| {
            remote.read(
                1,
                RegionEpoch::default(),
                ReadRequest::Get { key: "a".into() },
                cb,
            )
        });
        assert_eq!(got, Ok(ReadResponse::Value(Some(Bytes::from("1")))));
        let missing = wait(|cb| {
            remote.read(
                1,
                RegionEpoch::default(),
                ReadRequest::Get { key: "b".into() },
                cb,
            )
        });
        assert_eq!(missing, Ok(ReadResponse::Value(None)));
        let err = wait(|cb| remote.write(put("elsewhere", "x"), cb)).unwrap_err();
        assert!(
            matches!(&err, Error::NotLeader { region_id: 1, leader: Some(p) } if p.store_id == 3),
            "the leader hint survives the trip: {err:?}"
        );
        // Many threads share the one connection; answers find their askers.
        std::thread::scope(|s| {
            for t in 0..8 {
                let remote = &remote;
                s.spawn(move || {
                    for i in 0..100 {
                        let (k, v) = (format!("k{t}-{i:03}"), format!("{t}.{i}"));
                        wait(|cb| remote.write(put(&k, &v), cb)).unwrap();
                        let got = wait(|cb| {
                            remote.read(
                                1,
                                RegionEpoch::default(),
                                ReadRequest::Get {
                                    key: k.clone().into(),
                                },
                                cb,
                            )
                        });
                        assert_eq!(got, Ok(ReadResponse::Value(Some(v.into()))));
                    }
                });
            }
        });
        let scan = wait(|cb| {
            let req = ReadRequest::Scan {
                start: "k3-".into(),
                end: Bytes::new(),
                limit: 5,
            };
            remote.read(1, RegionEpoch::default(), req, cb)
        });
        let Ok(ReadResponse::Pairs { pairs, .. }) = scan else {
            panic!("{scan:?}")
        };
        assert_eq!(pairs.len(), 5);
        assert_eq!(pairs[0].0, Bytes::from("k3-000"));
        assert_eq!(
            svc.stats().connections,
            1,
            "one connection for every thread"
        );
    }

    #[test]
    fn garbage_closes_only_its_connection_and_a_lost_store_fails_fast_then_reconnects() {
        let svc = service();
        let addr = svc.local_addr();
        let remote = RemoteStore::connect(addr, RemoteConfig::default()).unwrap();
        let mut raw = std::net::TcpStream::connect(addr).unwrap();
        raw.write_all(b"definitely not a frame").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while svc.stats().rejected == 0 {
            assert!(Instant::now() < deadline, "garbage not rejected");
            std::thread::sleep(Duration::from_millis(5));
        }
        wait(|cb| remote.write(put("a", "1"), cb)).expect("others are still served");
        svc.shutdown();
        drop(svc);
        let err = wait(|cb| remote.write(put("a", "2"), cb)).unwrap_err();
        assert_eq!(err, Error::StoreStopped(7));
        // The store comes back on its address: the next request reconnects.
        let l = TcpListener::bind(addr).unwrap();
        let svc = ClientService::start(
            l,
            Arc::new(MapStore::default()),
            ClientServiceConfig::default(),
        )
        .unwrap();
        wait(|cb| remote.write(put("a", "3"), cb)).expect("reconnected");
        assert_eq!(svc.stats().connections, 1);
    }

    #[test]
    fn connections_beyond_the_bound_are_closed_and_the_others_served() {
        let cfg = ClientServiceConfig {
            connections_max: 1,
            ..Default::default()
        };
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let svc = ClientService::start(l, Arc::new(MapStore::default()), cfg).unwrap();
        let first = RemoteStore::connect(svc.local_addr(), RemoteConfig::default()).unwrap();
        let second = RemoteStore::connect(svc.local_addr(), RemoteConfig::default());
        assert!(
            second.is_err(),
            "the second connection is closed on arrival"
        );
        assert_eq!(svc.stats().refused, 1);
        wait(|cb| first.write(put("a", "1"), cb)).expect("the first is still served");
    }

    #[test]
    fn requests_beyond_the_in_flight_bound_are_refused_as_busy() {
        /// A store that never answers writes.
        struct Silent(Mutex<Vec<Callback<()>>>);
        impl std::fmt::Debug for Silent {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Silent")
            }
        }
        impl StoreHandle for Silent {
            fn store_id(&self) -> u64 {
                9
            }
            fn write(&self, _: WriteCommand, cb: Callback<()>) {
                self.0.lock().push(cb);
            }
            fn read(&self, _: u64, _: RegionEpoch, _: ReadRequest, cb: Callback<ReadResponse>) {
                cb(Err(Error::Timeout));
            }
            fn regions(&self) -> Vec<Region> {
                Vec::new()
            }
        }
        let store = Arc::new(Silent(Mutex::new(Vec::new())));
        let cfg = ClientServiceConfig {
            inflight_per_connection_max: 2,
            ..Default::default()
        };
        let svc = ClientService::start(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            store.clone(),
            cfg,
        )
        .unwrap();
        let remote = RemoteStore::connect(svc.local_addr(), RemoteConfig::default()).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        for _ in 0..3 {
            let tx = tx.clone();
            remote.write(put("a", "1"), Box::new(move |r| tx.send(r).unwrap()));
        }
        let third = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(matches!(third, Err(Error::ServerIsBusy(_))), "{third:?}");
        assert_eq!(svc.stats().busy, 1);
        for cb in store.0.lock().drain(..) {
            cb(Ok(()));
        }
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().is_ok());
        assert!(rx.recv_timeout(Duration::from_secs(10)).unwrap().is_ok());
    }
}
