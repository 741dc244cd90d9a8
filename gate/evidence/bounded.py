"""Read a Parquet file from a hostile run without letting the file decide the memory.

Its size on disk says little: a 463 KB file of one long string, dictionary-encoded,
decodes to gigabytes, and so do many row groups of a constant. So before anything is
decoded, the footer's value counts times each column's width are held to
MAX_DECODED_BYTES; string columns are then read a row group at a time in the file's
own compact form (a dictionary and indices) and their decoded length summed before
they are expanded. The footer is the run's claim too, but pyarrow decodes no more
values than it declares, so a lie there only makes the read fail.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from gate import contract
from gate.errors import InputError

MAX_DECODED_BYTES = 1 << 30         # 1 GiB of values, decoded, in one file
MAX_ROW_GROUPS = 100_000            # each costs a read call: a footer of millions is refused
# bytes per value as Arrow and pandas hold them; a string's cost beyond its characters
# (Arrow's offset, pandas' object pointer) is STRING_OVERHEAD
_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}
STRING_OVERHEAD = 16


@dataclass(frozen=True)
class Shape:
    """What a Parquet file's footer says, once it is checked against the bounds."""

    rows: int
    columns: tuple[str, ...]    # the top-level column names, in order


def inspect(path: Path, what: str) -> Shape:
    """The file's shape from its footer alone, refusing it if decoding it would be
    over the bounds: nothing of its data is read."""
    import pyarrow.parquet as pq

    with _errors(what), pq.ParquetFile(path) as parquet:
        shape, _ = _checked(parquet, what)
    return shape


def read(path: Path, what: str) -> Any:
    """The file as a DataFrame, within MAX_DECODED_BYTES."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _errors(what):
        with pq.ParquetFile(path) as parquet:
            _, fixed = _checked(parquet, what)
            schema = parquet.schema_arrow
        strings = [field.name for field in schema if _is_text(field.type)]
        budget = MAX_DECODED_BYTES - fixed
        tables = []
        with pq.ParquetFile(path, read_dictionary=strings) as parquet:
            for group in range(parquet.metadata.num_row_groups):
                table = parquet.read_row_group(group)
                for name in strings:
                    budget -= _text_bytes(table.column(name))
                if budget < 0:
                    raise _too_big(what)
                tables.append(_expanded(table, schema, strings))
        whole = pa.concat_tables(tables) if tables else schema.empty_table()
        return whole.to_pandas()


def _checked(parquet: Any, what: str) -> tuple[Shape, int]:
    """The footer's shape and the decoded bytes of everything but the strings'
    characters; InputError when either is over the bounds."""
    meta = parquet.metadata
    if meta.num_columns > contract.MAX_COLUMNS:
        raise InputError(f"{what}: {meta.num_columns} columns is over the limit of "
                         f"{contract.MAX_COLUMNS}")
    if meta.num_rows > contract.MAX_ROWS:
        raise InputError(f"{what}: {meta.num_rows} rows is over the limit of "
                         f"{contract.MAX_ROWS}")
    if meta.num_row_groups > MAX_ROW_GROUPS:
        raise InputError(f"{what}: {meta.num_row_groups} row groups is over the limit of "
                         f"{MAX_ROW_GROUPS}")
    widths = []
    for i in range(meta.num_columns):
        column = meta.schema.column(i)
        kind = column.physical_type
        if kind in ("BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY") and column.max_repetition_level:
            # lists of strings would need their own dictionary walk; no eval set needs them
            raise InputError(f"{what}: column {column.path[:60]!r} is a list of strings or "
                             "bytes, which the gate does not read")
        widths.append(_WIDTH.get(kind, max(column.length or 0, 0)) if kind != "BYTE_ARRAY"
                      else STRING_OVERHEAD)
    fixed = pages = 0
    for group in range(meta.num_row_groups):
        chunks = meta.row_group(group)
        fixed += sum(max(chunks.column(j).num_values, 0) * widths[j]
                     for j in range(chunks.num_columns))
        # the pages once decompressed (plain-encoded strings are their full length)
        pages += sum(max(chunks.column(j).total_uncompressed_size, 0)
                     for j in range(chunks.num_columns))
        if fixed > MAX_DECODED_BYTES or pages > MAX_DECODED_BYTES:
            raise _too_big(what)
    names = tuple(str(name) for name in parquet.schema_arrow.names)
    return Shape(meta.num_rows, names), fixed


def _is_text(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_binary(kind) or pa.types.is_large_binary(kind))


def _text_bytes(column: Any) -> int:
    """The characters a dictionary-encoded column holds once expanded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray):
            lengths = pc.take(pc.binary_length(chunk.dictionary), chunk.indices)
        else:
            lengths = pc.binary_length(chunk)
        total += int(pc.sum(lengths).as_py() or 0)
    return total


def _expanded(table: Any, schema: Any, strings: list[str]) -> Any:
    """The row group with its string columns back in their own type (within budget)."""
    import pyarrow.compute as pc

    for name in strings:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, schema.field(name),
                                 pc.cast(table.column(i), schema.field(name).type))
    return table


def _too_big(what: str) -> InputError:
    return InputError(f"{what}: decodes to more than {MAX_DECODED_BYTES} bytes "
                      "(the gate's limit for one file)")


@contextlib.contextmanager
def _errors(what: str) -> Iterator[None]:
    """Any pyarrow failure on a hostile file is that file's fault: one InputError."""
    import pyarrow as pa

    try:
        yield
    except InputError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError, IndexError,
            OverflowError) as exc:
        raise InputError(f"{what}: not a readable Parquet file ({_short(exc)})") from None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0][:160] if text else type(exc).__name__)
