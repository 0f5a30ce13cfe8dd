//! Parquet over `object_store`: a source that reads footers in parallel, prunes row groups
//! with their statistics and packs row groups into read fragments by bytes; and a sink that
//! writes files of a target byte size under deterministic names.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::physical_expr::execution_props::ExecutionProps;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::WriterProperties;
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::io::location::{FileRef, Location, parse, resolve};
use crate::io::partitioned::HivePartitions;
use crate::io::{Upload, local, tensor};

/// Reads byte ranges of one object, counting the bytes. A local file open in `local` is read
/// directly ([`local::read_ranges`]) instead of through the store.
struct StoreReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    bytes_read: Arc<AtomicU64>,
    local: Option<std::fs::File>,
}

fn to_parquet_err(
    e: impl std::error::Error + Send + Sync + 'static,
) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for StoreReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.bytes_read
            .fetch_add(range.end - range.start, Ordering::Relaxed);
        if let Some(file) = &self.local {
            let got = local::read_ranges(file, std::slice::from_ref(&range));
            return futures::future::ready(got.map(|mut b| b.remove(0)).map_err(to_parquet_err))
                .boxed();
        }
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(to_parquet_err)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        let n: u64 = ranges.iter().map(|r| r.end - r.start).sum();
        self.bytes_read.fetch_add(n, Ordering::Relaxed);
        if let Some(file) = &self.local {
            let got = local::read_ranges(file, &ranges).map_err(to_parquet_err);
            return futures::future::ready(got).boxed();
        }
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(to_parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let md = ParquetMetaDataReader::new()
                .with_page_index_policy(parquet::file::metadata::PageIndexPolicy::Skip)
                .with_arrow_reader_options(options)
                .load_and_finish(&mut *self, size)
                .await?;
            Ok(Arc::new(md))
        }
        .boxed()
    }
}

/// One parquet file with its footer.
#[derive(Debug)]
pub struct ParquetFile {
    /// Where it is.
    pub file: FileRef,
    /// Its name as the user sees it.
    pub display: String,
    /// Its footer, decoded.
    pub metadata: ArrowReaderMetadata,
}

/// A set of parquet files with one schema; files under hive `key=value/` directories get
/// those keys as columns after their own ([`HivePartitions`]).
#[derive(Debug)]
pub struct ParquetSource {
    location: Location,
    files: Vec<ParquetFile>,
    /// The files' columns, then the partition columns.
    schema: SchemaRef,
    /// The files' own columns.
    file_schema: SchemaRef,
    partitions: HivePartitions,
    /// Whether each row gets its file's path ([`crate::io::PATH_COLUMN`]).
    path_column: bool,
    /// Bytes fetched by every reader of this source (footers included).
    bytes_read: Arc<AtomicU64>,
}

/// Row groups of one file.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Index into the source's files.
    pub file: usize,
    /// Row groups to read.
    pub row_groups: Vec<usize>,
}

/// The work of one read task.
#[derive(Debug, Clone, Default)]
pub struct ReadFragment {
    /// Pieces, in order.
    pub pieces: Vec<Piece>,
    /// Uncompressed bytes (estimate).
    pub bytes: u64,
    /// Rows before filtering.
    pub rows: u64,
}

impl ParquetSource {
    /// Lists `paths` and reads every footer (in parallel). Files whose schemas differ are an
    /// error naming both files; a file that is not parquet is an error naming it.
    pub fn open(paths: &[String], rt: &Handle) -> Result<Self> {
        rt.block_on(Self::open_async(paths))
    }

    async fn open_async(paths: &[String]) -> Result<Self> {
        let (location, refs) = resolve(paths).await?;
        // Partition directories count from each input (a glob's from its fixed prefix).
        let bases: Vec<String> = paths
            .iter()
            .map(|p| {
                let path = parse(p)
                    .map(|(_, path)| path.to_string())
                    .unwrap_or_default();
                match path.find(['*', '?', '[']) {
                    Some(cut) => path[..cut].rsplit_once('/').map_or("", |(b, _)| b).into(),
                    None => path,
                }
            })
            .collect();
        let names: Vec<String> = refs.iter().map(|f| f.path.to_string()).collect();
        let partitions = HivePartitions::detect(&bases, &names);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let loc = &location;
        let counter = &bytes_read;
        let files: Vec<ParquetFile> = futures::stream::iter(refs)
            .map(|file| async move {
                let display = loc.display(&file.path);
                let mut reader = StoreReader {
                    store: loc.store.clone(),
                    path: file.path.clone(),
                    size: file.size,
                    bytes_read: counter.clone(),
                    local: None,
                };
                let metadata =
                    ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new())
                        .await
                        .map_err(|e| Error::InvalidData {
                            location: display.clone(),
                            message: format!("not a readable parquet file: {e}"),
                        })?;
                Ok::<_, Error>(ParquetFile {
                    file,
                    display,
                    metadata,
                })
            })
            .buffered(64)
            .try_collect()
            .await?;
        let first = &files[0];
        let mut schema = strip_metadata(first.metadata.schema());
        for f in &files[1..] {
            let s = strip_metadata(f.metadata.schema());
            if s.fields() == schema.fields() {
                continue;
            }
            // Tensors whose shapes differ unify (see `io::tensor`); any other difference is
            // an error.
            let unified = (s.fields().len() == schema.fields().len())
                .then(|| {
                    schema
                        .fields()
                        .iter()
                        .zip(s.fields())
                        .map(|(a, b)| tensor::unify(a, b))
                        .collect::<Option<Vec<_>>>()
                })
                .flatten();
            match unified {
                Some(fields) => schema = Arc::new(Schema::new(fields)),
                None => {
                    return Err(Error::InvalidData {
                        location: f.display.clone(),
                        message: format!(
                            "its schema {} conflicts with {} of {}",
                            fields_text(&s),
                            fields_text(&schema),
                            first.display
                        ),
                    });
                }
            }
        }
        let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        // A key the files hold as a column of their own stays theirs.
        fields.extend(
            partitions
                .fields
                .iter()
                .filter(|p| schema.index_of(p.name()).is_err())
                .cloned(),
        );
        Ok(ParquetSource {
            location,
            files,
            schema: Arc::new(Schema::new(fields)),
            file_schema: schema,
            partitions,
            path_column: false,
            bytes_read,
        })
    }

    /// The source with each row's file path in a last column, `path` (Ray's
    /// `include_paths=True`).
    pub fn with_paths(mut self) -> Result<Self> {
        self.schema = crate::io::with_path_field(&self.schema)?;
        self.path_column = true;
        Ok(self)
    }

    /// The common schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The files.
    pub fn files(&self) -> &[ParquetFile] {
        &self.files
    }

    /// Rows in all files (from the footers).
    pub fn num_rows(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.metadata.metadata().file_metadata().num_rows() as u64)
            .sum()
    }

    /// Uncompressed bytes of all row groups (from the footers).
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .flat_map(|f| {
                f.metadata
                    .metadata()
                    .row_groups()
                    .iter()
                    .map(|r| r.total_byte_size().max(0) as u64)
            })
            .sum()
    }

    /// Bytes fetched so far by readers of this source.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    /// Plans read fragments of about `target_bytes` uncompressed bytes each, skipping row
    /// groups that `predicate` proves empty from their statistics, and files that it proves
    /// empty from their hive partition values.
    pub fn plan(&self, predicate: Option<&Expr>, target_bytes: u64) -> Vec<ReadFragment> {
        let mut out = Vec::new();
        let mut cur = ReadFragment::default();
        for (fi, f) in self.files.iter().enumerate() {
            let md = f.metadata.metadata();
            let keep = predicate
                .and_then(|p| prune_row_groups(p, self, fi).ok())
                .unwrap_or_else(|| vec![true; md.num_row_groups()]);
            for (rg, rgmd) in md.row_groups().iter().enumerate() {
                if !keep[rg] {
                    continue;
                }
                match cur.pieces.last_mut() {
                    Some(p) if p.file == fi => p.row_groups.push(rg),
                    _ => cur.pieces.push(Piece {
                        file: fi,
                        row_groups: vec![rg],
                    }),
                }
                cur.bytes += rgmd.total_byte_size().max(0) as u64;
                cur.rows += rgmd.num_rows().max(0) as u64;
                if cur.bytes >= target_bytes {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
        if !cur.pieces.is_empty() {
            out.push(cur);
        }
        out
    }

    /// Reads a fragment, calling `each` with every batch until it returns `false`.
    /// `columns` projects (by name); `limit` caps rows per piece.
    pub fn read(
        &self,
        frag: &ReadFragment,
        columns: Option<&[String]>,
        batch_rows: usize,
        limit: Option<usize>,
        rt: &Handle,
        mut each: impl FnMut(RecordBatch) -> Result<bool>,
    ) -> Result<()> {
        let mut left = limit;
        let shape = self.shape(columns)?;
        for piece in &frag.pieces {
            if left == Some(0) {
                break;
            }
            let f = &self.files[piece.file];
            let bad = |e: parquet::errors::ParquetError| Error::InvalidData {
                location: f.display.clone(),
                message: e.to_string(),
            };
            // A file whose tensors the common schema unified (see `io::tensor`).
            let unify = f.metadata.schema().fields() != self.file_schema.fields();
            let local = self
                .location
                .local_path(&f.file.path)
                .map(std::fs::File::open)
                .transpose()
                .map_err(|e| Error::io(format!("opening {}", f.display), e))?;
            let reader = StoreReader {
                store: self.location.store.clone(),
                path: f.file.path.clone(),
                size: f.file.size,
                bytes_read: self.bytes_read.clone(),
                local,
            };
            let mut builder =
                ParquetRecordBatchStreamBuilder::new_with_metadata(reader, f.metadata.clone())
                    .with_row_groups(piece.row_groups.clone())
                    .with_batch_size(batch_rows);
            if let Some(roots) = &shape.roots {
                let mask = ProjectionMask::roots(f.metadata.parquet_schema(), roots.clone());
                builder = builder.with_projection(mask);
            }
            if let Some(n) = left {
                builder = builder.with_limit(n);
            }
            let mut stream = builder.build().map_err(bad)?;
            loop {
                let Some(batch) = rt.block_on(stream.next()) else {
                    break;
                };
                let mut batch = batch.map_err(bad)?;
                if unify {
                    batch = self.unified(batch)?;
                }
                let batch = self.shaped(&shape, piece.file, batch)?;
                if let Some(n) = left.as_mut() {
                    *n = n.saturating_sub(batch.num_rows());
                }
                if !each(batch)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// How a read's columns are made from what parquet decodes: worked out once per read.
struct Shape {
    /// The file columns to decode (`None`: all).
    roots: Option<Vec<usize>>,
    /// The output schema and how each column is made; `None`: the decoded batch as it is.
    made: Option<(SchemaRef, Vec<Made>)>,
}

/// One output column of a read.
enum Made {
    /// The decoded batch's column at this index.
    Decoded(usize),
    /// A hive partition column, by name.
    Partition(String),
    /// The row's file ([`crate::io::PATH_COLUMN`]).
    Path,
}

impl ParquetSource {
    /// The shape of a read of `columns` (`None`: every column, in the schema's order).
    fn shape(&self, columns: Option<&[String]>) -> Result<Shape> {
        let names: Vec<&str> = match columns {
            Some(c) => c.iter().map(String::as_str).collect(),
            None => self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect(),
        };
        let mut roots = Vec::new();
        for n in &names {
            match self.file_schema.index_of(n) {
                Ok(i) => roots.push(i),
                // A partition column, or the path.
                Err(_) if self.schema.index_of(n).is_ok() => {}
                Err(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "no column {n:?} in the parquet files"
                    )));
                }
            }
        }
        // Parquet decodes the projected columns in the files' order.
        let mut decoded = roots.clone();
        decoded.sort_unstable();
        decoded.dedup();
        let file_names: Vec<&str> = self
            .file_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let roots = columns.map(|_| roots);
        if names == file_names {
            return Ok(Shape { roots, made: None });
        }
        let mut fields = Vec::with_capacity(names.len());
        let mut made = Vec::with_capacity(names.len());
        for n in &names {
            fields.push(self.schema.field_with_name(n)?.clone());
            made.push(match self.file_schema.index_of(n) {
                Ok(i) => Made::Decoded(decoded.binary_search(&i).map_err(|_| {
                    Error::Internal(format!("column {n:?} is not among those decoded"))
                })?),
                Err(_) if self.path_column && *n == crate::io::PATH_COLUMN => Made::Path,
                Err(_) => Made::Partition(n.to_string()),
            });
        }
        Ok(Shape {
            roots,
            made: Some((Arc::new(Schema::new(fields)), made)),
        })
    }

    /// `batch`, decoded from a file, with its columns as the common schema has them (tensors
    /// of another shape as the variable-shaped type).
    fn unified(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let mut fields = Vec::with_capacity(batch.num_columns());
        let mut arrays = Vec::with_capacity(batch.num_columns());
        for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
            let to = self.file_schema.field_with_name(field.name())?;
            arrays.push(tensor::conform(array, field, to)?);
            fields.push(to.clone());
        }
        let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            arrays,
            &opts,
        )?)
    }

    /// A batch of file `file` in the read's `shape`: the decoded columns, partition values
    /// and path.
    fn shaped(&self, shape: &Shape, file: usize, batch: RecordBatch) -> Result<RecordBatch> {
        let Some((schema, made)) = &shape.made else {
            return Ok(batch);
        };
        let rows = batch.num_rows();
        let arrays = made
            .iter()
            .map(|m| match m {
                Made::Decoded(i) => Ok(batch.column(*i).clone()),
                Made::Path => Ok(crate::io::path_array(&self.files[file].display, rows)),
                Made::Partition(n) => self
                    .partitions
                    .column(file, n, rows)
                    .ok_or_else(|| Error::Internal(format!("column {n:?} lost in the read"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            arrays,
            &opts,
        )?)
    }
}

fn strip_metadata(s: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(s.fields().clone()))
}

fn fields_text(s: &Schema) -> String {
    let f: Vec<String> = s
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    format!("({})", f.join(", "))
}

/// Statistics of one file's row groups, for DataFusion's pruning predicate: a hive
/// partition column's are the file's value of it (every row group's minimum and maximum).
struct RowGroupStats<'a> {
    file: &'a ParquetFile,
    schema: &'a Schema,
    /// The file's partition values, and its index among them.
    partitions: &'a HivePartitions,
    index: usize,
}

impl RowGroupStats<'_> {
    fn converter(&self, column: &Column) -> Option<StatisticsConverter<'_>> {
        StatisticsConverter::try_new(
            &column.name,
            self.schema,
            self.file.metadata.metadata().file_metadata().schema_descr(),
        )
        .ok()
    }

    /// The file's value of partition column `column`, once per row group (`None`: not a
    /// partition column, or the files hold a column of that name).
    fn partition(&self, column: &Column) -> Option<ArrayRef> {
        if self.file.metadata.schema().index_of(&column.name).is_ok() {
            return None;
        }
        let groups = self.file.metadata.metadata().num_row_groups();
        self.partitions.column(self.index, &column.name, groups)
    }
}

impl PruningStatistics for RowGroupStats<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        if let Some(values) = self.partition(column) {
            return Some(values);
        }
        self.converter(column)?
            .row_group_mins(self.file.metadata.metadata().row_groups())
            .ok()
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        if let Some(values) = self.partition(column) {
            return Some(values);
        }
        self.converter(column)?
            .row_group_maxes(self.file.metadata.metadata().row_groups())
            .ok()
    }

    fn num_containers(&self) -> usize {
        self.file.metadata.metadata().num_row_groups()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        if let Some(values) = self.partition(column) {
            let rows = self.file.metadata.metadata().row_groups().iter();
            let nulls: UInt64Array = rows
                .map(|r| {
                    Some(if values.null_count() > 0 {
                        r.num_rows() as u64
                    } else {
                        0
                    })
                })
                .collect();
            return Some(Arc::new(nulls));
        }
        let c = self.converter(column)?;
        c.row_group_null_counts(self.file.metadata.metadata().row_groups())
            .ok()
            .map(|a| Arc::new(a) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self
            .file
            .metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|r| Some(r.num_rows() as u64))
            .collect();
        Some(Arc::new(counts))
    }

    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}

fn prune_row_groups(predicate: &Expr, source: &ParquetSource, index: usize) -> Result<Vec<bool>> {
    let (schema, file) = (&source.schema, &source.files[index]);
    let df_schema =
        DFSchema::try_from(schema.as_ref().clone()).map_err(|e| Error::Internal(e.to_string()))?;
    let phys = datafusion::physical_expr::create_physical_expr(
        predicate,
        &df_schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let Some(pp) = PruningPredicateBuilder::new()
        .with_file_schema(schema.clone())
        .build(phys)
    else {
        // Nothing to prune with (always true, or not expressible on statistics).
        return Ok(vec![true; file.metadata.metadata().num_row_groups()]);
    };
    pp.prune(&RowGroupStats {
        file,
        schema,
        partitions: &source.partitions,
        index,
    })
    .map_err(|e| Error::Internal(e.to_string()))
}

/// Most bytes a written row group holds (encoded), and so a writer holds in memory.
const ROW_GROUP_BYTES: usize = 64 << 20;

/// Writes parquet files under a directory URL: `part-<task>-<n>.parquet`, each closed once it
/// reaches `target_bytes` (compressed, as written).
pub struct ParquetSink {
    location: Location,
    dir: Path,
    task: usize,
    target_bytes: u64,
    props: WriterProperties,
    current: Option<ArrowWriter<Upload>>,
    written: Vec<WrittenFile>,
}

/// A file a sink wrote.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct WrittenFile {
    /// Its URL or path.
    pub path: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("dir", &self.dir)
            .field("task", &self.task)
            .finish()
    }
}

impl ParquetSink {
    /// A sink for task `task` writing under `dir` (a path or URL), with `opts`' codec; a
    /// file closes at `target_bytes` (see [`crate::io::min_rows`] for `min_rows_per_file`).
    pub fn new(
        dir: &str,
        task: usize,
        target_bytes: u64,
        opts: &crate::io::WriteOptions,
    ) -> Result<Self> {
        let (location, path) = crate::io::location::parse(dir)?;
        // A writer holds its row group until it is full: bounded by bytes, not only rows.
        let props = WriterProperties::builder()
            .set_compression(codec(opts.compression.as_deref())?)
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES.min(target_bytes.max(1) as usize)))
            .build();
        Ok(ParquetSink {
            location,
            dir: path,
            task,
            target_bytes: target_bytes.max(1),
            props,
            current: None,
            written: Vec::new(),
        })
    }
}

/// Rows a writer's file holds so far.
fn file_rows(w: &ArrowWriter<Upload>) -> u64 {
    let flushed: u64 = w
        .flushed_row_groups()
        .iter()
        .map(|r| r.num_rows() as u64)
        .sum();
    flushed + w.in_progress_rows() as u64
}

/// The parquet codec named `name` (Ray's `compression=`; `None`: snappy).
fn codec(name: Option<&str>) -> Result<parquet::basic::Compression> {
    use parquet::basic::{Compression, ZstdLevel};
    Ok(match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("snappy") => Compression::SNAPPY,
        Some("zstd") => Compression::ZSTD(ZstdLevel::default()),
        Some("lz4") => Compression::LZ4_RAW,
        Some("none" | "uncompressed") => Compression::UNCOMPRESSED,
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "compression={other:?}: Volley writes parquet with snappy, zstd, lz4 or none"
            )));
        }
    })
}

/// A parquet writer's error: the store's (an upload that failed, naming its file) or the
/// encoder's.
fn writer_error(e: parquet::errors::ParquetError) -> Error {
    match e {
        parquet::errors::ParquetError::External(e) => Error::io("parquet writer", e),
        e => Error::Internal(format!("parquet writer: {e}")),
    }
}

impl ParquetSink {
    /// A writer of the sink's next file.
    fn open_file(&self, schema: SchemaRef, rt: &Handle) -> Result<ArrowWriter<Upload>> {
        let name = format!("part-{:05}-{:04}.parquet", self.task, self.written.len());
        let upload = Upload::new(&self.location, &self.dir, &name, rt)?;
        ArrowWriter::try_new(upload, schema, Some(self.props.clone())).map_err(writer_error)
    }

    fn close_file(&mut self) -> Result<()> {
        let Some(w) = self.current.take() else {
            return Ok(());
        };
        let rows = file_rows(&w);
        let upload = w.into_inner().map_err(writer_error)?;
        self.written.push(upload.finish(rows)?);
        Ok(())
    }
}

impl crate::io::FileSink for ParquetSink {
    /// Writes a batch, rolling to a new file at the target size.
    fn write(&mut self, batch: &RecordBatch, rt: &Handle) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.current.is_none() {
            self.current = Some(self.open_file(batch.schema(), rt)?);
        }
        // Split the batch so a file closes as soon as it reaches the target.
        let mut offset = 0;
        while offset < batch.num_rows() {
            let Some(w) = self.current.as_mut() else {
                break;
            };
            let size = (w.bytes_written() + w.in_progress_size()) as u64;
            let row_bytes = (batch.get_array_memory_size() / batch.num_rows()).max(1) as u64;
            let room = self.target_bytes.saturating_sub(size) / row_bytes;
            let n = (room.max(1) as usize).min(batch.num_rows() - offset);
            w.write(&batch.slice(offset, n)).map_err(writer_error)?;
            offset += n;
            let size = (w.bytes_written() + w.in_progress_size()) as u64;
            if size >= self.target_bytes {
                self.close_file()?;
                if offset < batch.num_rows() {
                    self.current = Some(self.open_file(batch.schema(), rt)?);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<WrittenFile>> {
        self.close_file()?;
        Ok(self.written)
    }
}

impl crate::io::min_rows::RollingSink for ParquetSink {
    fn roll(&mut self) -> Result<()> {
        self.close_file()
    }
}
