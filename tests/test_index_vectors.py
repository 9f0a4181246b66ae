"""FAISS helpers on real FAISS: index types, recall, removal, filters, bytes."""

from __future__ import annotations

import numpy as np
import pytest

from xling.index import vectors

DIMENSION = 32


def unit_rows(count: int, *, seed: int, clusters: int = 0) -> np.ndarray:
    """Random unit vectors; around ``clusters`` centres when given, as real
    embeddings are (IVF has no structure to exploit in uniform noise)."""
    rng = np.random.default_rng(seed)
    if clusters:
        centres = rng.standard_normal((clusters, DIMENSION))
        rows = centres[rng.integers(clusters, size=count)] + 0.3 * rng.standard_normal(
            (count, DIMENSION)
        )
    else:
        rows = rng.standard_normal((count, DIMENSION))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows.astype(np.float32)


def ids_for(count: int) -> np.ndarray:
    # Sparse, large ids: nothing may assume ids are row numbers.
    return np.arange(count, dtype=np.int64) * 7 + 1_000_000_000_000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = unit_rows(4000, seed=1, clusters=40)
    queries = unit_rows(50, seed=2, clusters=40)
    return rows, ids_for(len(rows)), queries


def test_small_collections_get_an_exact_index_large_ones_ivf(data) -> None:
    rows, ids, _ = data

    flat = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=len(rows))
    ivf = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=len(rows) - 1)

    assert vectors.index_type(flat) == "flat"
    assert vectors.index_type(ivf) == "ivf"
    assert flat.ntotal == ivf.ntotal == len(rows)
    assert ivf.nlist == vectors.ivf_nlist(len(rows))


def test_nlist_keeps_enough_training_points_per_list() -> None:
    assert vectors.ivf_nlist(100_000) == round(100_000**0.5)
    assert vectors.ivf_nlist(100_000, 512) == 512
    assert vectors.ivf_nlist(1000, 512) == 1000 // vectors.MIN_POINTS_PER_LIST
    assert vectors.ivf_nlist(10) == 1


def test_ivf_recall_at_10_against_flat(data) -> None:
    rows, ids, queries = data
    flat = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=len(rows))
    ivf = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=0)

    _, truth = vectors.search(flat, queries, 10)
    _, found = vectors.search(ivf, queries, 10, nprobe=8)

    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.9
    _, all_lists = vectors.search(ivf, queries, 10, nprobe=ivf.nlist)
    np.testing.assert_array_equal(np.sort(all_lists, axis=1), np.sort(truth, axis=1))


def test_flat_search_matches_brute_force(data) -> None:
    rows, ids, queries = data
    flat = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=len(rows))

    scores, found = vectors.search(flat, queries, 5)

    all_scores = queries @ rows.T
    best = np.argsort(-all_scores, axis=1)[:, :5]
    np.testing.assert_array_equal(found, ids[best])
    np.testing.assert_allclose(scores, np.take_along_axis(all_scores, best, axis=1), rtol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


@pytest.mark.parametrize("threshold", [10_000, 0], ids=["flat", "ivf"])
def test_removed_ids_are_gone(data, threshold: int) -> None:
    rows, ids, queries = data
    index = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=threshold)
    _, before = vectors.search(index, queries, 10, nprobe=1000)
    doomed = np.unique(before[:, :3])

    removed = vectors.remove_ids(index, np.concatenate([doomed, np.array([-5], np.int64)]))

    assert removed == len(doomed)
    assert index.ntotal == len(rows) - len(doomed)
    _, after = vectors.search(index, queries, 10, nprobe=1000)
    assert not set(after.ravel()) & set(doomed)
    assert set(vectors.index_ids(index)) == set(ids) - set(doomed)


@pytest.mark.parametrize("threshold", [10_000, 0], ids=["flat", "ivf"])
def test_allowed_ids_filter_exactly(data, threshold: int) -> None:
    rows, ids, queries = data
    index = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=threshold)
    allowed_rows = np.arange(0, len(rows), 3)

    _, found = vectors.search(index, queries, 10, allowed_ids=ids[allowed_rows], nprobe=1000)
    subset = vectors.build_index(
        rows[allowed_rows], ids[allowed_rows], dimension=DIMENSION, ivf_threshold=10_000
    )
    _, truth = vectors.search(subset, queries, 10)

    np.testing.assert_array_equal(found, truth)


def test_fewer_matches_than_k_are_padded(data) -> None:
    rows, ids, queries = data
    index = vectors.build_index(rows[:3], ids[:3], dimension=DIMENSION, ivf_threshold=100)

    scores, found = vectors.search(index, queries[:1], 5)

    assert list(found[0, 3:]) == [-1, -1]
    assert np.all(np.isneginf(scores[0, 3:]))
    assert set(found[0, :3]) == set(ids[:3])


@pytest.mark.parametrize("threshold", [10_000, 0], ids=["flat", "ivf"])
def test_serialize_round_trip(data, threshold: int) -> None:
    rows, ids, queries = data
    index = vectors.build_index(rows, ids, dimension=DIMENSION, ivf_threshold=threshold)

    copy = vectors.deserialize(vectors.serialize(index), dimension=DIMENSION)

    assert vectors.index_type(copy) == vectors.index_type(index)
    for original, restored in zip(
        vectors.search(index, queries, 10, nprobe=4),
        vectors.search(copy, queries, 10, nprobe=4),
        strict=True,
    ):
        np.testing.assert_array_equal(original, restored)


def test_deserialize_rejects_garbage_and_other_dimensions(data) -> None:
    rows, ids, _ = data
    payload = vectors.serialize(vectors.build_index(rows, ids, dimension=32, ivf_threshold=10**6))

    with pytest.raises(ValueError, match="not a FAISS index"):
        vectors.deserialize(b"definitely not an index", dimension=DIMENSION)
    with pytest.raises(ValueError, match="dimension"):
        vectors.deserialize(payload, dimension=64)


def test_add_to_an_empty_index_then_search() -> None:
    index = vectors.new_flat_index(DIMENSION)
    rows = unit_rows(10, seed=3)

    vectors.add_vectors(index, rows, ids_for(10))
    _, found = vectors.search(index, rows[4:5], 1)

    assert found[0, 0] == ids_for(10)[4]


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.zeros((2, DIMENSION), np.float64), "float32"),
        (np.zeros((2, DIMENSION + 1), np.float32), r"shape \(n, 32\)"),
        (np.zeros(DIMENSION, np.float32), r"shape \(n, 32\)"),
        ([[0.0] * DIMENSION], "float32 numpy array"),
    ],
)
def test_bad_vectors_are_value_errors(matrix, message: str) -> None:
    index = vectors.new_flat_index(DIMENSION)

    with pytest.raises(ValueError, match=message):
        vectors.add_vectors(index, matrix, np.arange(2, dtype=np.int64))
    with pytest.raises(ValueError, match=message):
        vectors.search(index, matrix, 3)


def test_bad_ids_and_k_are_value_errors() -> None:
    index = vectors.new_flat_index(DIMENSION)
    rows = unit_rows(2, seed=4)

    with pytest.raises(ValueError, match="int64"):
        vectors.add_vectors(index, rows, np.arange(2, dtype=np.int32))
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        vectors.add_vectors(index, rows, np.arange(3, dtype=np.int64))
    with pytest.raises(ValueError, match="k must be positive"):
        vectors.search(index, rows, 0)
    with pytest.raises(ValueError, match="dimension must be positive"):
        vectors.new_flat_index(0)
