"""Writing result tables (column positions, metrics) as CSV files."""

from __future__ import annotations

import os

from atomseg.io._files import atomic_path

__all__ = ["write_table_csv"]


def write_table_csv(table, path: str | os.PathLike, *, index: bool = False) -> None:
    """Write a table to a CSV file atomically (temporary name in the same folder, then rename).

    Parameters
    ----------
    table : pandas.DataFrame or anything ``pandas.DataFrame`` accepts (dict of columns, ...)
        The table, e.g. one row per atomic column with ``row``, ``col`` in pixels.
    path : str or path-like
        Output file. It appears only once completely written; an existing file is replaced.
    index : bool, default False
        Also write the DataFrame index as the first column.

    Raises
    ------
    FileNotFoundError, PermissionError
        If the output folder does not exist or cannot be written.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> from atomseg.io import write_table_csv
    >>> path = os.path.join(tempfile.mkdtemp(), "columns.csv")
    >>> write_table_csv(pd.DataFrame({"row": [1.25, 7.5], "col": [3.0, 4.75]}), path)
    >>> print(open(path).read().strip())
    row,col
    1.25,3.0
    7.5,4.75
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        table = pd.DataFrame(table)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=index)
