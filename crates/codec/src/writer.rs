//! Lets amq-protocol's cookie-factory generators write straight into a `BytesMut`.
//!
//! cookie-factory writes length-prefixed values (field tables, arrays) by reserving the prefix,
//! generating the value, then going back to fill the prefix in (`BackToTheBuffer`). Its own
//! `Vec<u8>` implementation generates the prefix into a temporary `Vec`; this one patches it in
//! place, so encoding a method allocates nothing beyond the output buffer's own growth.

use amq_protocol::frame::{BackToTheBuffer, GenError, GenResult, SerializeFn, WriteContext};
use bytes::BytesMut;
use std::io;

pub(crate) struct BytesWriter<'a> {
    buf: &'a mut BytesMut,
    /// `Some(pos)` while a reserved prefix is being filled in: writes overwrite bytes from `pos`
    /// instead of appending.
    patch_at: Option<usize>,
}

impl io::Write for BytesWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.patch_at {
            None => self.buf.extend_from_slice(data),
            Some(pos) => {
                let end = *pos + data.len();
                let dst = self
                    .buf
                    .get_mut(*pos..end)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::WriteZero, "prefix larger than reserved"))?;
                dst.copy_from_slice(data);
                *pos = end;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BackToTheBuffer for BytesWriter<'_> {
    fn reserve_write_use<
        Tmp,
        Gen: Fn(WriteContext<Self>) -> Result<(WriteContext<Self>, Tmp), GenError>,
        Before: Fn(WriteContext<Self>, Tmp) -> GenResult<Self>,
    >(
        s: WriteContext<Self>,
        reserved: usize,
        gen: &Gen,
        before: &Before,
    ) -> Result<WriteContext<Self>, GenError> {
        if s.write.patch_at.is_some() {
            // A prefix generator that itself reserves a prefix: cookie-factory never does this.
            return Err(GenError::NotYetImplemented);
        }
        let WriteContext { write, position: start_position } = s;
        let start = write.buf.len();
        write.buf.resize(start + reserved, 0);
        let (mut body, tmp) = gen(WriteContext { write, position: start_position + reserved as u64 })?;
        let end_position = body.position;
        body.write.patch_at = Some(start);
        let prefix = before(WriteContext { write: body.write, position: start_position }, tmp)?;
        let mut write = prefix.write;
        let filled = write.patch_at.take().unwrap_or(start) - start;
        if filled != reserved {
            return Err(GenError::BufferTooBig(reserved - filled));
        }
        Ok(WriteContext { write, position: end_position })
    }
}

/// Runs an amq-protocol generator, appending its output to `buf`.
pub(crate) fn generate<'a, F: SerializeFn<BytesWriter<'a>>>(buf: &'a mut BytesMut, f: F) {
    let writer = BytesWriter { buf, patch_at: None };
    // Appending to a growable buffer cannot fail and the generators always fill the prefixes
    // they reserve, so an error here is a bug in the generator, not bad input.
    if let Err(e) = f(WriteContext::from(writer)) {
        panic!("amq-protocol generator failed writing into BytesMut: {e:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{generation::gen_field_table, AMQPValue, FieldArray, FieldTable};

    #[test]
    fn nested_length_prefixes_match_vec_generation() {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongInt(7));
        let mut table = FieldTable::default();
        table.insert("inner".into(), AMQPValue::FieldTable(inner));
        table.insert(
            "arr".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Boolean(true), AMQPValue::LongString("s".into())])),
        );

        let mut ours = BytesMut::from(&b"prefix"[..]);
        generate(&mut ours, gen_field_table(&table));
        let theirs = match gen_field_table(&table)(WriteContext::from(Vec::new())) {
            Ok(ctx) => ctx.into_inner().0,
            Err(e) => panic!("{e:?}"),
        };
        assert_eq!(&ours[..6], b"prefix");
        assert_eq!(&ours[6..], &theirs[..]);
    }
}
