// Processes that train together (data parallelism): MPI where histocnn is
// built with it and launched under mpirun; a single process otherwise.
//
// Contract: every collective (allreduce, gather, barrier) must be called by
// every rank in the same order; they block until all ranks arrive. Host
// memory only (GPU gradients go through NCCL in the CUDA step). Not
// thread-safe: one training thread per rank calls them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace histocnn {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;
  // In place: every rank ends with the element-wise sum over ranks.
  virtual void allreduce_sum(float* values, size_t count) = 0;
  virtual void allreduce_sum(double* values, size_t count) = 0;
  // Rank 0 receives every rank's values, concatenated in rank order; the
  // others receive an empty vector.
  virtual std::vector<double> gather(const std::vector<double>& mine) = 0;
  // Every rank's bytes, to every rank, in rank order (mine included).
  virtual std::vector<std::string> allgather(const std::string& mine) = 0;
  // Rank 0's bytes to every rank (in place).
  virtual void broadcast(void* data, size_t bytes) = 0;
  virtual void barrier() = 0;
  // This process's index among those on its machine (GPU selection).
  // Collective under MPI (MPI_Comm_split_type): every rank calls it.
  virtual int local_rank() const { return 0; }
  // Ends the whole job (every rank) after printing `message`; never returns.
  [[noreturn]] virtual void abort(const std::string& message) = 0;
  bool root() const { return rank() == 0; }
};

// MPI_Init when built with MPI (MPI_Finalize at exit); a single-process
// communicator otherwise. Throws histocnn::Error when launched as several
// processes (mpirun -np N > 1) by a build without MPI.
std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv);
// The single-process communicator (tests, tools).
std::unique_ptr<Communicator> make_single_process_communicator();
bool mpi_built();

// Rows [begin, end) of a batch of `rows` that rank `rank` of `ranks` computes:
// contiguous, in rank order, sizes differing by at most one.
struct RowRange {
  int begin, end;
  int count() const { return end - begin; }
};
inline RowRange rows_of_rank(int rows, int rank, int ranks) {
  return {int(int64_t(rows) * rank / ranks), int(int64_t(rows) * (rank + 1) / ranks)};
}

}  // namespace histocnn
