"""Reading sources and writing results: the data layer every segmint feature goes through."""
from .columns import ColumnView, DictionaryUnifier, unpack_bits
from .source import DEFAULT_BATCH_SIZE, Batch, Column, Source, open
from .writers import ResultWriter, check_table_output, write_table

__all__ = ["open", "Source", "Batch", "Column", "ColumnView", "DictionaryUnifier", "unpack_bits",
           "ResultWriter", "write_table", "check_table_output", "DEFAULT_BATCH_SIZE"]
