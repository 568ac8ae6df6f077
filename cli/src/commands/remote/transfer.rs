//! `import` and `export` against a server: the same line format and batching as on a file,
//! batches as transactions of puts, the export paged at one revision.

use etch::{Range, RangeOptions, RangeResponse};
use etch_server::proto::etcdserverpb as pb;
use etch_server::proto::etcdserverpb::kv_client::KvClient;

use crate::args::{ExportArgs, ImportArgs};
use crate::client::{convert, revision, Client};
use crate::commands::transfer::{export_from, import_into, KeySpace};
use crate::commands::Ctx;
use crate::error::CliResult;

/// The server's key space.
struct RemoteKeys<'a>(&'a Client);

impl KeySpace for RemoteKeys<'_> {
    fn put_batch(&self, puts: Vec<(Vec<u8>, Vec<u8>)>) -> CliResult<i64> {
        let success = puts
            .into_iter()
            .map(|(key, value)| pb::RequestOp {
                request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                    key,
                    value,
                    ..Default::default()
                })),
            })
            .collect();
        let mut kv = KvClient::new(self.0.channel.clone());
        let resp = self.0.call(kv.txn(pb::TxnRequest {
            compare: Vec::new(),
            success,
            failure: Vec::new(),
        }))?;
        Ok(revision(resp.header.as_ref()))
    }

    fn revision(&self) -> CliResult<i64> {
        // A read of one key is the cheapest way to learn the current revision.
        let mut kv = KvClient::new(self.0.channel.clone());
        let resp = self.0.call(kv.range(pb::RangeRequest {
            key: vec![0],
            count_only: true,
            ..Default::default()
        }))?;
        Ok(revision(resp.header.as_ref()))
    }

    fn range(&self, range: &Range, opts: &RangeOptions) -> CliResult<RangeResponse> {
        let mut kv = KvClient::new(self.0.channel.clone());
        let resp = self
            .0
            .call(kv.range(convert::range_request(range, opts, false)))?;
        Ok(convert::range_response(resp))
    }

    fn finish(self: Box<Self>) -> CliResult {
        Ok(())
    }
}

/// `import FILE` into the server.
pub fn import(ctx: &mut Ctx, c: &Client, a: &ImportArgs) -> CliResult {
    import_into(ctx, a, || {
        Ok(Box::new(RemoteKeys(c)) as Box<dyn KeySpace + '_>)
    })
}

/// `export` from the server.
pub fn export(c: &Client, a: &ExportArgs) -> CliResult {
    export_from(a, || Ok(Box::new(RemoteKeys(c)) as Box<dyn KeySpace + '_>))
}
