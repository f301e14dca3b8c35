/* The one version of the whole project: printed by --version, logged at
 * start and sent to the controller when a node registers. */
#ifndef MC_VERSION_H
#define MC_VERSION_H

#define MC_VERSION "0.1.0"
#define MC_SOFTWARE "mail-cluster " MC_VERSION

#endif
