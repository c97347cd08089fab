// libpq for the migrator: a migration file goes to the server whole (PQexec, the simple query protocol takes many
// statements, dollar-quoted bodies and comments as they are).
#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
