"""An independent reading of DICOM whole-slide files (pydicom), for
tests/test_dicom_slide.cpp: per file, one line

    NAME ORGANIZATION COLUMNS ROWS FRAMES FOUND [COL,ROW,SUM ...]

FOUND is how many frames pydicom finds in the Pixel Data (encapsulated:
its own split of fragments into frames, by the offset table). For
uncompressed frames each frame follows: its 1-based position in the level
(from the per-frame functional groups, or row by row for TILED_FULL) and the
sum of its bytes. Exit 2 when pydicom is not installed (the test skips)."""
import os
import sys

try:
    import pydicom
    from pydicom.encaps import generate_pixel_data_frame
except ImportError:
    sys.exit(2)

for path in sys.argv[1:]:
    ds = pydicom.dcmread(path)
    frames = int(ds.NumberOfFrames)
    rows, cols = int(ds.Rows), int(ds.Columns)
    across = (int(ds.TotalPixelMatrixColumns) + cols - 1) // cols
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        found = len(list(generate_pixel_data_frame(ds.PixelData, frames)))
        frame_bytes = []
    else:
        size = rows * cols * 3
        frame_bytes = [ds.PixelData[i * size:(i + 1) * size] for i in range(frames)]
        found = sum(1 for f in frame_bytes if len(f) == size)
    fields = [os.path.basename(path), ds.DimensionOrganizationType, str(ds.TotalPixelMatrixColumns),
              str(ds.TotalPixelMatrixRows), str(frames), str(found)]
    for i, data in enumerate(frame_bytes):
        if ds.DimensionOrganizationType == "TILED_SPARSE":
            plane = ds.PerFrameFunctionalGroupsSequence[i].PlanePositionSlideSequence[0]
            col, row = plane.ColumnPositionInTotalImagePixelMatrix, plane.RowPositionInTotalImagePixelMatrix
        else:
            col, row = (i % across) * cols + 1, (i // across) * rows + 1
        fields.append("%d,%d,%d" % (col, row, sum(data)))
    print(" ".join(fields))
