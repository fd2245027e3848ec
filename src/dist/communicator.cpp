#include "dist/communicator.h"

#include <cstdio>
#include <cstdlib>

#include "core/error.h"

#ifdef HISTOCNN_HAVE_MPI
#include <mpi.h>
#endif

namespace histocnn {
namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single process"; }
  void allreduce_sum(float*, size_t) override {}
  void allreduce_sum(double*, size_t) override {}
  std::vector<double> gather(const std::vector<double>& mine) override { return mine; }
  void broadcast(void*, size_t) override {}
  std::vector<std::string> allgather(const std::string& mine) override { return {mine}; }
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "histocnn: %s\n", message.c_str());
    std::exit(1);
  }
};

// Processes a launcher asked for (Open MPI, MPICH/Hydra, Slurm).
int launched_processes() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var)) return std::atoi(v);
  return 1;
}

#ifdef HISTOCNN_HAVE_MPI
void check(int status, const char* call) {
  if (status != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int length = 0;
    MPI_Error_string(status, text, &length);
    fail(std::string(call) + " failed: " + std::string(text, size_t(length)));
  }
}

class Mpi final : public Communicator {
 public:
  Mpi(int* argc, char*** argv) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) check(MPI_Init(argc, argv), "MPI_Init");
    // Errors come back as codes (then exceptions), not as a silent abort.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~Mpi() override {
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "MPI, " + std::to_string(size_) + " processes"; }
  void allreduce_sum(float* values, size_t count) override {
    // In chunks: MPI counts are int.
    for (size_t done = 0; done < count;) {
      const int n = int(std::min<size_t>(count - done, size_t(1) << 30));
      check(MPI_Allreduce(MPI_IN_PLACE, values + done, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
      done += size_t(n);
    }
  }
  void allreduce_sum(double* values, size_t count) override {
    check(MPI_Allreduce(MPI_IN_PLACE, values, int(count), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce");
  }
  std::vector<double> gather(const std::vector<double>& mine) override {
    const int n = int(mine.size());
    std::vector<int> counts(static_cast<size_t>(size_), 0), offsets(static_cast<size_t>(size_), 0);
    check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD), "MPI_Gather");
    std::vector<double> all;
    if (rank_ == 0) {
      int total = 0;
      for (int r = 0; r < size_; ++r) offsets[size_t(r)] = total, total += counts[size_t(r)];
      all.resize(size_t(total));
    }
    check(MPI_Gatherv(mine.data(), n, MPI_DOUBLE, all.data(), counts.data(), offsets.data(),
                      MPI_DOUBLE, 0, MPI_COMM_WORLD),
          "MPI_Gatherv");
    return all;
  }
  void broadcast(void* data, size_t bytes) override {
    check(MPI_Bcast(data, int(bytes), MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
  }
  std::vector<std::string> allgather(const std::string& mine) override {
    require(mine.size() < (size_t(1) << 31), "allgather: more than 2 GB from one process");
    const int n = int(mine.size());
    std::vector<int> counts(static_cast<size_t>(size_), 0), offsets(static_cast<size_t>(size_), 0);
    check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, MPI_COMM_WORLD),
          "MPI_Allgather");
    int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      offsets[size_t(r)] = int(total);
      total += counts[size_t(r)];
    }
    require(total < (int64_t(1) << 31), "allgather: more than 2 GB in all");
    std::string all(size_t(total), '\0');
    check(MPI_Allgatherv(mine.data(), n, MPI_BYTE, all.data(), counts.data(), offsets.data(),
                         MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r)
      out.push_back(all.substr(size_t(offsets[size_t(r)]), size_t(counts[size_t(r)])));
    return out;
  }
  int local_rank() const override {
    MPI_Comm local;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
          "MPI_Comm_split_type");
    int r = 0;
    MPI_Comm_rank(local, &r);
    MPI_Comm_free(&local);
    return r;
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  [[noreturn]] void abort(const std::string& message) override {
    std::fprintf(stderr, "histocnn: rank %d: %s\n", rank_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);
  }

 private:
  int rank_ = 0, size_ = 1;
};
#endif

}  // namespace

bool mpi_built() {
#ifdef HISTOCNN_HAVE_MPI
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcess>();
}

std::unique_ptr<Communicator> make_communicator(int* argc, char*** argv) {
#ifdef HISTOCNN_HAVE_MPI
  if (launched_processes() > 1) return std::make_unique<Mpi>(argc, argv);
#else
  (void)argc;
  (void)argv;
  require(launched_processes() <= 1,
          "launched as " + std::to_string(launched_processes()) +
              " processes, but this build of histocnn has no MPI (install libopenmpi-dev and "
              "rebuild)");
#endif
  return make_single_process_communicator();
}

}  // namespace histocnn
